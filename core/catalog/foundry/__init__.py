"""Foundry Local, in-process (foundry-local-sdk 2.2.x): the one place that talks to the SDK, one job per module:
the runtime and its native output (`runtime`), model rows (`models`), the public catalog and its offline memory
(`catalog`), online operations (`downloads`), bring-your-own folders and their registration (`folders`), and the
context a run loads a model with (`contexts`)."""
from core.catalog.foundry.catalog import (  # noqa: F401
    CATALOG_RETRY_S, CATALOG_STATE, OFFLINE_NOTICE, catalog_recently_unreachable, list_public_catalog,
)
from core.catalog.foundry.contexts import CONTEXTS_DIR, context_variant  # noqa: F401
from core.catalog.foundry.downloads import (  # noqa: F401
    download_model, execution_providers, register_execution_providers,
)
from core.catalog.foundry.folders import (  # noqa: F401
    folder_size_mb, genai_context, has_chat_template, inside_folder, register_local_model,
    unregister_local_model, validate_model_folder,
)
from core.catalog.foundry.models import CONTEXT_VARIANT, MODEL_KEYS, get_local_model, list_local_models  # noqa: F401
from core.catalog.foundry.runtime import CPU_EP, NATIVE_LOG, foundry_dir, get_manager, quiet_native  # noqa: F401
