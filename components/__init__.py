"""Kubeflow Pipelines v2 wrappers of the coea library: settings, components, pipelines, local run, schedule.

The only part of coea that imports kfp. Modules: ``settings`` (deployment settings, no kfp), ``components``
(one thin component per stage), ``resources`` (GPU, volume, requests, retries), ``pipelines`` (coea_training,
coea_recurring, compile), ``local`` (run with kfp.local), ``schedule`` (cron check, recurring runs).
Nothing is imported here, so ``import coea.kfp.settings`` stays cheap.
"""
