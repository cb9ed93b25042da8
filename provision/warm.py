"""Keep what a process loaded before it forks shared with the processes it forks.

gunicorn (``preload_app``) and django-q2's ``qcluster`` load Django and the project once and fork their
workers; a forked process shares the parent's memory pages until either writes to them. Two things write
to them without need:

* imports after the fork: whatever a gunicorn worker imports on its first request is its own copy, so the
  master imports the URLconf and every view first (``warm_web``, from ``gunicorn.conf.py``);
* the garbage collector: a full collection in a child writes to the header of every object it inherited,
  which copies every page holding one (tens of MB per django-q2 worker). ``freeze_inherited_objects``
  moves those objects out of the child's collections right after each fork (Python's ``gc.freeze``, as
  its documentation advises for processes that fork without exec), so the pages stay shared. A child's own
  objects are collected as usual.
"""

from __future__ import annotations

import gc
import os

from django.urls import get_resolver


def warm_web() -> None:
    """The URLconf and every view module it names."""
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module it names


def freeze_inherited_objects() -> None:
    """In every process forked from this one from now on, freeze the objects it inherited (once per
    process: ``ProvisionConfig.ready``)."""
    os.register_at_fork(after_in_child=gc.freeze)
