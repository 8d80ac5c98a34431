"""users and tokens, idempotency keys, fair-share dispatch of scoring chunks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('admin', sa.Boolean(), nullable=False),
        sa.Column('max_jobs', sa.Integer(), nullable=True),
        sa.Column('max_candidates', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('name', name=op.f('uq_users_name')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_users_token_hash')),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_jobs_owner_idempotency_key'), ['owner', 'idempotency_key'])
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatch', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('dispatch')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_jobs_owner_idempotency_key'), type_='unique')
        batch_op.drop_column('idempotency_key')
    op.drop_table('users')
