"""Volume geometries every bridge test runs on: axis-aligned RAS and LPS, oblique, anisotropic."""
import numpy as np
from scipy.spatial.transform import Rotation


def _matrix(direction_ras, spacing, origin_ras):
    m = np.eye(4)
    m[:3, :3] = np.asarray(direction_ras, float) @ np.diag(spacing)
    m[:3, 3] = origin_ras
    return m


GEOMETRIES = {
    # RAS-oriented NIfTI as TotalSegmentator writes it (i -> right... flipped by -1 in LPS terms)
    "ras": _matrix(np.eye(3), (3.0, 3.0, 3.0), (-50.0, 20.0, 94.3)),
    # LPS-oriented DICOM-style axes: i -> left, j -> posterior
    "lps": _matrix(np.diag([-1.0, -1.0, 1.0]), (0.8, 0.8, 2.5), (177.9, -11.3, 94.3)),
    # oblique (rotated about two axes) and anisotropic, with a left-handed flip of k
    "oblique_anisotropic": _matrix(
        Rotation.from_euler("xz", [17.0, -28.0], degrees=True).as_matrix() @ np.diag([1.0, 1.0, -1.0]),
        (0.7, 1.3, 4.0), (12.5, -40.25, 301.0)),
}
