"""bring your own data: registered datasets, the data each job saw, training checkpoints, the winner's retraining

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'datasets',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('summary', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
        sa.UniqueConstraint('name', name=op.f('uq_datasets_name')),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data', sa.JSON(), nullable=True))
    with op.batch_alter_table('candidates', schema=None) as batch_op:  # mbv2's arch indices need 38 bits
        batch_op.alter_column('arch_index', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table('trainings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('checkpoint_epoch', sa.Integer(), nullable=True))
        # one row per candidate and mode: the winner's retraining (mode 'retrain') sits beside its top-k row
        batch_op.drop_constraint('uq_trainings_candidate_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_trainings_candidate_id_mode'), ['candidate_id', 'mode'])


def downgrade() -> None:
    with op.batch_alter_table('trainings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_trainings_candidate_id_mode', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_trainings_candidate_id'), ['candidate_id'])
        batch_op.drop_column('checkpoint_epoch')
        batch_op.drop_column('artifact')
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.alter_column('arch_index', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('data')
    op.drop_table('datasets')
