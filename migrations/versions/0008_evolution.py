"""evolution: the generation a job is scoring, each candidate's generation and parents

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), nullable=True))
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('parents', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('parents')
        batch_op.drop_column('generation')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('generation')
