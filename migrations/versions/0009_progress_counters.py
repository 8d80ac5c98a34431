"""progress counters on jobs, kept in the transactions that change what they count; the score cache

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COUNTERS = ('candidates_total', 'candidates_scored', 'candidates_failed', 'trainings_total', 'trainings_done',
            'trainings_failed')


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for name in COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default='0'))
    # jobs that exist already: count once, here
    op.execute("UPDATE jobs SET "
               "candidates_total = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id), "
               "candidates_scored = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id AND c.status = 'scored'), "
               "candidates_failed = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id AND c.status = 'failed'), "
               "trainings_total = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain'), "
               "trainings_done = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain' "
               "AND t.status = 'done'), "
               "trainings_failed = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain' "
               "AND t.status = 'failed')")
    op.create_table(
        'score_cache',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('space', sa.String(length=32), nullable=False),
        sa.Column('arch', sa.String(length=160), nullable=False),
        sa.Column('proxy', sa.String(length=32), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('params', sa.BigInteger(), nullable=True),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('hits', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_score_cache')),
    )
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cached', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_column('cached')
    op.drop_table('score_cache')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for name in reversed(COUNTERS):
            batch_op.drop_column(name)
