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
// ignored stays ignored. Calls nest: a sweep arms around the trainings, which arm again.
// (Commands that train also ignore SIGPIPE for their whole life: Ctrl-C ends a `| tee` reading
// their output too, and the next log line must not kill them before the checkpoint.)
void stop_signal_arm(void);
// Undoes one stop_signal_arm; the outermost puts back the handlers that were there before. A
// pending request is kept, and with it the SIGUSR1 handler (a repeated SIGUSR1 is a no-op, also
// after the run stopped: mpirun forwards a copy to ranks that a group signal reached already).
void stop_signal_disarm(void);
// The signal whose stop is pending, or 0.
int stop_signal_pending(void);
// Forgets a pending request (a process that runs several trainings, one after another).
void stop_signal_clear(void);
// "SIGINT", "SIGTERM", "SIGUSR1" or "signal N".
const char *stop_signal_name(int sig);
