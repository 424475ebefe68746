"""The unlearning pipeline without Celery or Redis: claim deletions into a job, run the job."""
