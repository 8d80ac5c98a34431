"""energy: candidates.energy_j, trainings.energy_j (measured joules, NULL where unknown)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('energy_j', sa.Float(), nullable=True))
    with op.batch_alter_table('trainings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('energy_j', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('trainings', schema=None) as batch_op:
        batch_op.drop_column('energy_j')
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('energy_j')
