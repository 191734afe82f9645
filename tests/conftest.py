"""Suite-wide settings."""

from hypothesis import settings

# Hypothesis' per-example deadline is a timing assertion; on a loaded 2-core machine the first
# example (imports, warm caches) can exceed it. Speed is measured in bench/, not in tests.
settings.register_profile("callbridge", deadline=None)
settings.load_profile("callbridge")
