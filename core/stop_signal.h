// A graceful stop for long runs: while armed, SIGINT, SIGTERM, SIGHUP and SIGUSR1 only record that a
// stop was asked for; the training loop reads the request between steps, agrees on it across
// ranks, writes a checkpoint and returns (core/train.c). A second SIGINT, SIGTERM or SIGHUP ends the
// process at once, as it would unarmed.
//
// `maskvim train` arms first thing (stop_signal_arm_startup), before MPI_Init (Open MPI 4.1 leaves these handlers
// alone; tests/scripts/test_train_stop_startup.sh signals ranks under mpirun during startup),
// and stays armed through the whole setup: a batch scheduler, mpirun or a sweep may signal a
// training that is still starting (writing synthetic data, loading a checkpoint), and that must
// neither kill it (status 138/143) nor be lost. A request taken during startup is read once
// the setup is done, in one collective over the ranks, and the run stops before its first step:
// nothing trained, so the checkpoint it started from (or none, for a fresh run) is where
// `--resume auto` continues.
//
// Why these signals: Ctrl-C is SIGINT; batch schedulers announce the end of a job's time with
// SIGTERM (or, configured so, SIGUSR1 some minutes ahead); mpirun forwards SIGUSR1 to every rank
// as it is, while it answers SIGTERM by killing the ranks after a short grace; SIGHUP is what a
// run started in a terminal gets when its ssh session or terminal closes (a run meant to outlive
// it is started with nohup, which makes it ignored, and an ignored signal stays ignored).
#pragma once
#include <signal.h>
#include <stdbool.h>

// Installs the handlers (with SA_RESTART: reads, writes and waits carry on); a signal that was
// ignored stays ignored. Calls nest: a sweep arms around the trainings, which arm again; a
// request taken while the sweep alone is armed stops the training it starts next. The outermost
// arm forgets a request left from an earlier armed period (its owner has seen it: train_run
// returned MV_TRAIN_STOPPED), so it cannot cancel a later training of the same process.
// The outermost arm also unblocks the four signals: a sweep starts its `maskvim train`
// children with them blocked, so that one sent before the child armed waits for the handlers
// instead of killing it. (Commands that train also ignore SIGPIPE for their whole life: Ctrl-C
// ends a `| tee` reading their output too, and the next log line must not kill them before the
// checkpoint.)
void stop_signal_arm(void);
// Undoes one stop_signal_arm; the outermost puts back the SIGINT, SIGTERM and SIGHUP handlers that were
// there before. A pending request is kept (stop_signal_pending still answers). SIGUSR1 stays
// handled for the life of the process, and while nothing is armed it is noted on stderr and
// otherwise ignored: schedulers send it minutes before a job's end, and mpirun forwards a copy
// to ranks that a group signal reached already; a run that has just finished or stopped must
// not die of it (status 138) while it writes its report and closes MPI.
void stop_signal_disarm(void);
// The stop signals, in one order on every rank (train_ranks.c counts them over the ranks).
#define MV_STOP_SIGNAL_COUNT 4
extern const int mv_stop_signals[MV_STOP_SIGNAL_COUNT];   // SIGINT, SIGTERM, SIGHUP, SIGUSR1
// The same as a set, for a parent that starts a training with them blocked until it arms
// (launch/experiment_spawn.c).
void stop_signal_set(sigset_t *set);
// The signal whose stop is pending, or 0.
int stop_signal_pending(void);
// The pending request while armed, or 0: for long work inside an armed period that should
// stop early when asked (the writing of synthetic data during a training's startup or a sweep's
// preparation), and not in a command that never armed (`maskvim data synth`: the signals act as
// usual there) or once its owner saw the request and disarmed.
int stop_signal_request(void);
// An arm for a command's startup, before MPI_Init (`maskvim train`, `maskvim experiment run`):
// as stop_signal_arm, but it ends by itself with the disarm of the next arm nested in it, the
// training's (train_run) or the sweep's own: once that is over, the signals behave as they did
// without the startup arm (SIGINT, SIGTERM and SIGHUP end the process at once again).
void stop_signal_arm_startup(void);
// Ends the startup arm if it still stands (the command failed, or returns, before the nested arm
// ended it); otherwise does nothing.
void stop_signal_end_startup(void);
// Whether a training is starting up (train_run sets it while it sets up, clears it before its
// first step; the outermost disarm clears it too): only the handler's message depends on it, so
// that it says the request stops the run before its first step rather than "after this step".
void stop_signal_starting(bool starting);
// "SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1" or "signal N".
const char *stop_signal_name(int sig);
