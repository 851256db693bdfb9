"""The OPTIMADE API over an AiiDA profile: ``create_reactmlip_app(profile_name=None)`` (an ASGI app).

Production, e.g.::

    REACTMLIP_PROFILE=myprofile uvicorn --factory aiida_reactmlip.optimade.app:create_reactmlip_app \\
        --host 0.0.0.0 --port 5000 --workers 4

or ``reactmlip optimade serve --host 127.0.0.1 --port 5000`` for one process.
"""

from __future__ import annotations

import os
from typing import Any

from .mapping import PREFIX, PROVIDER_FIELDS

__all__ = ('create_reactmlip_app', 'reactmlip_config')


def reactmlip_config(**overrides: Any):
    """``optimade.server.config.ServerConfig`` of this provider (prefix ``reactmlip``, its provider fields).

    ``overrides`` go to ``ServerConfig`` (e.g. ``base_url``, ``page_limit``, ``page_limit_max``).
    """
    from optimade.models import Implementation, Provider
    from optimade.server.config import ServerConfig

    from aiida_reactmlip import __version__

    settings: dict[str, Any] = dict(
        provider=Provider(
            prefix=PREFIX,
            name='aiida-reactmlip',
            description='DFT-labelled configurations of reactive systems for fine-tuning machine-learning '
            'interatomic potentials, served from an AiiDA provenance database.',
            homepage='https://github.com/aiida-reactmlip/aiida-reactmlip',
        ),
        implementation=Implementation(
            name='aiida-reactmlip',
            version=str(__version__),
            source_url='https://github.com/aiida-reactmlip/aiida-reactmlip',
        ),
        provider_fields={'structures': [dict(field) for field in PROVIDER_FIELDS]},
        insert_test_data=False,
        insert_from_jsonl=None,
        log_dir=os.environ.get('REACTMLIP_OPTIMADE_LOG_DIR', '/tmp/reactmlip-optimade-logs'),
        page_limit=20,
        page_limit_max=500,
        mongo_database='reactmlip_optimade_links',
    )
    settings.update(overrides)
    return ServerConfig(**settings)


def create_reactmlip_app(profile_name: str | None = None, config=None, filter_limits=None, **overrides: Any):
    """The OPTIMADE FastAPI app serving the ``LabelledDatasetData`` frames of an AiiDA profile.

    ``profile_name``: AiiDA profile to load (default: ``$REACTMLIP_PROFILE``, else the profile already
    loaded, else AiiDA's default). ``config``: a ready ``ServerConfig`` (else :func:`reactmlip_config`
    with ``overrides``). ``filter_limits``: a :class:`~aiida_reactmlip.optimade.guard.FilterLimits`
    (default 5,000 characters, 20 levels of parentheses, 256 terms, 1,000,000 predicate tests per
    request); larger or costlier filters answer 400 naming the limit.
    ``/structures`` and ``/references`` query the database on every request (read-only);
    ``/links`` is empty. Query parameters of the wrong type or range answer 400, never 500.
    """
    from aiida import get_profile, load_profile
    from fastapi.exceptions import RequestValidationError
    from optimade.server.create_app import create_app

    from .backend import DatasetReferenceCollection, StructureCollection
    from .guard import DEFAULT_LIMITS, FilterParser, request_validation_handler

    name = profile_name or os.environ.get('REACTMLIP_PROFILE') or None
    current = get_profile()
    if current is None or (name is not None and current.name != name):
        load_profile(name, allow_switch=True)
    if config is None:
        os.makedirs(str(overrides.get('log_dir', os.environ.get('REACTMLIP_OPTIMADE_LOG_DIR', '/tmp/reactmlip-optimade-logs'))), exist_ok=True)
        config = reactmlip_config(**overrides)
    app = create_app(config, logger_tag='reactmlip')
    limits = filter_limits or DEFAULT_LIMITS
    structures = StructureCollection(config, limits=limits)
    structures.warm_up()
    app.state.entry_collections['structures'] = structures
    app.state.entry_collections['references'] = DatasetReferenceCollection(config, limits=limits)
    links = app.state.entry_collections.get('links')
    if links is not None:  # optimade's own (empty) links collection: same parser and limits
        links.parser = FilterParser(limits)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    return app
