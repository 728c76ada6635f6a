"""Typed errors of policies/: what a command can tell the user in one line (the CLI maps them to exit code 2)."""


class PolicyError(Exception):
    """A policy, checkpoint, bundle or dataset cannot be used as given; the message says what to do."""


class PolicyLoadError(PolicyError, ValueError):
    """A checkpoint or bundle folder is missing a file, or a file is truncated, damaged or not what its manifest
    records; the message names the file."""


class PolicyFileMissingError(PolicyLoadError, FileNotFoundError):
    """A file a checkpoint or bundle needs is not there (or the folder itself is not); the message names it."""


class DatasetFolderError(PolicyError, ValueError):
    """A folder given as a dataset is not one (missing, a file, no meta/info.json); the message names it."""


class DatasetFeaturesError(PolicyError, ValueError):
    """A dataset lacks what the model takes (a camera, the state, the action, or one of another size); the message
    lists what the dataset has and what the model needs, and how to map one onto the other (``--rename_map``)."""


# What `--policy.path` accepts, for messages about a folder that is none of these.
POLICY_FOLDERS = (
    "an ONNX bundle (bundle.json, vla.onnx, text/: what `onboard export` writes), a LeRobot checkpoint (a "
    "`pretrained_model/` folder: config.json with a policy type, model.safetensors), or an onboard VLA checkpoint "
    "(config.json, model.safetensors, stats.json: what `onboard train` writes in "
    "checkpoints/<step>/pretrained_model/); a training run's folder or its checkpoints/last stands for its newest"
)
