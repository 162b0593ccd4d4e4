"""``medsegai batch``: one model over many studies, resumable, on local worker processes or on Ray.

* :mod:`.studies` finds the studies (a folder of image files and DICOM series folders, or a CSV)
  and shards them (``--num-parts/--part-id``, as nnU-Net's ``-num_parts/-part_id``);
* :mod:`.study` segments one study into a staging folder and renames it into place with a
  marker that records the input's SHA256 and the options: the marker is what "done" means, so a
  rerun after a crash or ``kill -9`` redoes only what has no matching marker, and a Ray task
  retried after a worker died (at-least-once) does no harm;
* :mod:`.local` runs N worker processes, :mod:`.ray_run` N Ray actors, each with the model loaded once;
* :mod:`.manifest` keeps OUT/medsegai_batch.json (each study's status) and the JSON-lines log.
"""
from .run import BatchOptions, run_batch

__all__ = ["BatchOptions", "run_batch"]
