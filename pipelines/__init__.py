"""The CoEA Kubeflow Pipelines v2 pipelines, built from the components of :mod:`components`.

Modules: ``definitions`` (``coea_training``, ``coea_recurring``: :func:`~pipelines.definitions.build_pipelines`),
``compile`` (:func:`~pipelines.compile.compile_pipelines`; ``python -m pipelines.compile --write|--check``
regenerates or checks every checked-in YAML), ``local`` (run with ``kfp.local``), ``simulate`` (the recurring
pipeline period after period under ``kfp.local``), ``schedule`` (cron check, recurring runs). The compiled
pipelines a user uploads in the Kubeflow UI are checked in beside them: ``coea_training.yaml``,
``coea_recurring.yaml``. Nothing is imported here, so ``import pipelines.schedule`` stays cheap.
"""
