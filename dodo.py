"""doit entry point: the same task graph as ``czbuild build`` (see docs/building.md).

``doit`` builds every recipe variant; ``doit -n 2``, ``doit list``, ``doit info TASK``,
``doit clean`` and ``doit forget`` work as usual. Select with doit variables:
``doit recipes=nuclei overrides="tile=256,512" out=build``.
"""

from czbuild.builder.dodo import DOIT_CONFIG, task_build, task_manifest  # noqa: F401
