"""flax-resnets command line. Training and evaluation arrive with the trainer (issue 4).

Until then, ``python -m flax_resnets.models`` lists the model zoo.
"""

import sys

if __name__ == "__main__":
    sys.exit("The trainer has not landed yet; `python -m flax_resnets.models` lists the models.")
