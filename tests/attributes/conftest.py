from tests.data.conftest import corpus, preprocessed  # noqa: F401 (shared fixtures)
from tests.training.conftest import decoder_checkpoint  # noqa: F401
