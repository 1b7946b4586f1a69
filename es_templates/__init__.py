"""Polyseek's engine contract as package data: component and index templates, the vector field per
dialect (``opensearch/``, ``elasticsearch/``) and Kibana saved objects (``kibana/``).

Nothing to import here: read the files with :mod:`importlib.resources` through
:func:`pipelines.engine.dialect.load_template` and :func:`pipelines.engine.dialect.template_files`,
so a checkout, an editable install and the wheel all find them the same way.
"""
