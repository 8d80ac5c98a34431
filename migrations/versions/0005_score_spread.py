"""score spread: candidates.score_std and candidates.repeat_scores (proxy.repeats > 1)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score_std', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('repeat_scores', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('repeat_scores')
        batch_op.drop_column('score_std')
