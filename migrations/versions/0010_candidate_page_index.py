"""candidate pages read in index order: (job_id, rank, id) replaces (job_id, rank)

A page is `ORDER BY rank ASC NULLS LAST, id` (best first, unranked last, ties by id). With `id` in
the index PostgreSQL reads the first `limit` rows of the job in index order instead of sorting all
of the job's candidates (15,625 for a whole NAS-Bench-201 job) on every page.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 12:40:00
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_candidates_job_rank')
        batch_op.create_index('ix_candidates_job_rank', ['job_id', 'rank', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_candidates_job_rank')
        batch_op.create_index('ix_candidates_job_rank', ['job_id', 'rank'], unique=False)
