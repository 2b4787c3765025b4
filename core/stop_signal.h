// A graceful stop for long runs: while armed, SIGINT, SIGTERM and SIGUSR1 only record that a
// stop was asked for; the training loop reads the request between steps, agrees on it across
// ranks, writes a checkpoint and returns (core/train.c). A second SIGINT or SIGTERM ends the
// process at once, as it would unarmed.
//
// Why these signals: Ctrl-C is SIGINT; batch schedulers announce the end of a job's time with
// SIGTERM (or, configured so, SIGUSR1 some minutes ahead); mpirun forwards SIGUSR1 to every rank
// as it is, while it answers SIGTERM by killing the ranks after a short grace.
#pragma once

// Installs the handlers (with SA_RESTART: reads, writes and waits carry on); a signal that was
// ignored stays ignored. Calls nest: a sweep arms around the trainings, which arm again; a
// request taken while the sweep alone is armed stops the training it starts next. The outermost
// arm forgets a request left from an earlier armed period (its owner has seen it: train_run
// returned MV_TRAIN_STOPPED), so it cannot cancel a later training of the same process.
// (Commands that train also ignore SIGPIPE for their whole life: Ctrl-C ends a `| tee` reading
// their output too, and the next log line must not kill them before the checkpoint.)
void stop_signal_arm(void);
// Undoes one stop_signal_arm; the outermost puts back the SIGINT and SIGTERM handlers that were
// there before. A pending request is kept (stop_signal_pending still answers). SIGUSR1 stays
// handled for the life of the process, and while nothing is armed it is noted on stderr and
// otherwise ignored: schedulers send it minutes before a job's end, and mpirun forwards a copy
// to ranks that a group signal reached already; a run that has just finished or stopped must
// not die of it (status 138) while it writes its report and closes MPI.
void stop_signal_disarm(void);
// The signal whose stop is pending, or 0.
int stop_signal_pending(void);
// Forgets a pending request (a process that runs several trainings, one after another).
void stop_signal_clear(void);
// "SIGINT", "SIGTERM", "SIGUSR1" or "signal N".
const char *stop_signal_name(int sig);
