"""Train the shipped shapes teacher from scratch: ``python scripts/train_teacher.py [--resume]``.

The same as ``uni3d teacher train``; every field of TeacherTrainConfig is a flag (``--help``).
"""

import tyro

from uni3d.teachers.train_shapes import TeacherTrainConfig, train

if __name__ == "__main__":
    train(tyro.cli(TeacherTrainConfig))
