"""Imports every domain's tables so that ``metadata`` is complete for Alembic."""

from pluggably.artifacts import models as _artifacts  # noqa: F401
from pluggably.cluster import models as _cluster  # noqa: F401
from pluggably.credentials import models as _credentials  # noqa: F401
from pluggably.db.base import Base
from pluggably.downloads import models as _downloads  # noqa: F401
from pluggably.generation import models as _generation  # noqa: F401
from pluggably.registry import models as _registry  # noqa: F401
from pluggably.responses import models as _responses  # noqa: F401
from pluggably.sessions import models as _sessions  # noqa: F401
from pluggably.usage import models as _usage  # noqa: F401
from pluggably.users import models as _users  # noqa: F401

metadata = Base.metadata
