"""The CoEA Kubeflow Pipelines v2 components: one thin wrapper per stage of ``coea.stages`` / ``coea.state``.

Modules: ``settings`` (:class:`~components.settings.DeploymentSettings`, imports no kfp), ``functions`` (the
component functions), ``build`` (:func:`~components.build.build_components` for a deployment's image,
:func:`~components.build.compile_components` to ``<name>.yaml``), ``resources`` (GPU, volume, requests,
retries of a task). The compiled spec of each component is checked in beside them as ``<name>.yaml``
(regenerate with ``make compile``). Layers: ``coea.cli`` -> ``pipelines`` -> ``components`` -> ``coea``.
Nothing is imported here, so ``import components.settings`` stays cheap.
"""
