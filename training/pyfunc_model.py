"""What MLflow runs to make a registered version's ``pyfunc`` model (MLflow's "models from code").

A registered version keeps this file, not a pickled object: loading it runs this file, whose
import comes from the version's own ``code/`` (or from the project where it is installed), and
the weights come from its ``zpd_model`` artifact (see :mod:`training.pyfunc`).
"""

from mlflow.models import set_model

from training.pyfunc import PyfuncLearnerModel

set_model(PyfuncLearnerModel())
