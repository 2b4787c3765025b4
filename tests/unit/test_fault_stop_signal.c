// The stop requests of core/stop_signal.h around the trainings of one process. SIGUSR1 arriving
// once a training has finished (its report, its last files and MPI's clean-up still to come:
// the minutes-ahead warning of a batch scheduler) used to kill the process with status 138,
// because the outermost disarm put back the default action; now it is noted and ignored for the
// life of the process, and it leaves no request behind that would stop a later training. A
// request taken while a sweep is armed still reaches the training it starts, and the sweep.
// `maskvim train` arms before MPI_Init (stop_signal_arm_startup): a request during startup
// reaches train_run, and the startup arm ends with the training's own.
// Criterion runs each test in a process of its own, so each starts unarmed.
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <string.h>
#include "core/stop_signal.h"

static void handler_of(int sig, struct sigaction *out) { cr_assert_eq(sigaction(sig, NULL, out), 0); }

Test(fault_stop_signal, usr1_after_a_finished_training_is_ignored) {
    stop_signal_arm();   // train_run: the loop
    stop_signal_disarm();   // the loop is over; the report and clean-up follow
    raise(SIGUSR1);   // used to end the process here (default action)
    cr_assert_eq(stop_signal_pending(), 0, "a SIGUSR1 outside training left a request");
    raise(SIGUSR1);
    stop_signal_arm();   // a later training in the same process is not stopped by it
    cr_assert_eq(stop_signal_pending(), 0);
    stop_signal_disarm();
}

Test(fault_stop_signal, usr1_after_a_stop_is_ignored) {
    stop_signal_arm();
    raise(SIGTERM);
    cr_assert_eq(stop_signal_pending(), SIGTERM);
    stop_signal_disarm();
    raise(SIGUSR1);   // mpirun's late copy
    cr_assert_eq(stop_signal_pending(), SIGTERM, "the request the caller reads after disarm");
}

Test(fault_stop_signal, old_request_does_not_stop_the_next_training) {
    stop_signal_arm();
    raise(SIGUSR1);   // e.g. during the final evaluation: that run finishes anyway
    stop_signal_disarm();
    cr_assert_eq(stop_signal_pending(), SIGUSR1);
    stop_signal_arm();   // the next training, not nested in anything armed
    cr_assert_eq(stop_signal_pending(), 0, "a request of an earlier training would stop this one at its first step");
    raise(SIGUSR1);   // and a new request is taken
    cr_assert_eq(stop_signal_pending(), SIGUSR1);
    stop_signal_disarm();
}

Test(fault_stop_signal, request_between_sweep_rows_reaches_the_next_training) {
    stop_signal_arm();   // the sweep
    raise(SIGUSR1);   // between rows, or while a row starts
    stop_signal_arm();   // the row's train_run
    cr_assert_eq(stop_signal_pending(), SIGUSR1);
    stop_signal_disarm();
    stop_signal_disarm();
    cr_assert_eq(stop_signal_pending(), SIGUSR1, "the sweep reads it after its disarm");
}

Test(fault_stop_signal, int_and_term_are_put_back_after_training) {
    struct sigaction sa;
    stop_signal_arm();
    handler_of(SIGINT, &sa);
    cr_assert_neq(sa.sa_handler, SIG_DFL);
    stop_signal_disarm();
    handler_of(SIGINT, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL, "Ctrl-C outside training must end the process");
    handler_of(SIGTERM, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
    // Armed again, they are requests again, and twice is at once (checked in the script test).
    stop_signal_arm();
    raise(SIGINT);
    cr_assert_eq(stop_signal_pending(), SIGINT);
    stop_signal_disarm();
}

static volatile sig_atomic_t g_theirs = 0;
static void their_handler(int sig) { g_theirs = sig; }

Test(fault_stop_signal, someone_elses_usr1_handler_is_put_back) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = their_handler;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    stop_signal_arm();
    stop_signal_disarm();
    raise(SIGUSR1);
    cr_assert_eq(g_theirs, SIGUSR1);
    cr_assert_eq(stop_signal_pending(), 0);
}

Test(fault_stop_signal, ignored_signal_stays_ignored) {
    signal(SIGINT, SIG_IGN);   // a job a script put in the background
    stop_signal_arm();
    raise(SIGINT);
    cr_assert_eq(stop_signal_pending(), 0);
    stop_signal_disarm();
    struct sigaction sa;
    handler_of(SIGINT, &sa);
    cr_assert_eq(sa.sa_handler, SIG_IGN);
}

// Startup (`maskvim train` arms before MPI_Init, train_run nests its own arm): a request taken
// before train_run's arm survives it, and the handler says the run stops before its first step.
Test(fault_stop_signal, request_during_startup_reaches_train_run, .init = cr_redirect_stderr) {
    stop_signal_starting(true);
    stop_signal_arm_startup();   // cmd_train, before MPI_Init
    raise(SIGUSR1);   // mpirun forwards a scheduler's SIGUSR1 while the data is written
    stop_signal_arm();   // train_run
    cr_assert_eq(stop_signal_pending(), SIGUSR1, "the nested arm of train_run lost the startup request");
    stop_signal_starting(false);
    stop_signal_disarm();   // train_run returns MV_TRAIN_STOPPED
    stop_signal_end_startup();
    cr_assert_eq(stop_signal_pending(), SIGUSR1);
    cr_assert_stderr_eq_str("maskvim: SIGUSR1 during startup: stopping before the first step\n");
}

// A sweep starts its `maskvim train` children with the stop signals blocked until they arm
// (launch/experiment_spawn.c): one sent in between is delivered by the outermost arm, as a
// request (it used to stay blocked, so the stop was lost).
Test(fault_stop_signal, signal_blocked_before_arm_becomes_a_request) {
    sigset_t set, now;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    cr_assert_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
    raise(SIGTERM);   // held back: with the default action it would end the process at arm
    stop_signal_starting(true);
    stop_signal_arm();
    cr_assert_eq(stop_signal_pending(), SIGTERM);
    cr_assert_eq(sigprocmask(SIG_BLOCK, NULL, &now), 0);
    cr_assert_eq(sigismember(&now, SIGTERM), 0, "still blocked after arming");
    stop_signal_disarm();
}

// Once train_run's training is over (its disarm), the startup arm ends with it: SIGINT and
// SIGTERM end the process again, SIGUSR1 is only noted, as before the startup arm existed. A
// sweep's nested arms (deeper than the training's) do not end it early.
Test(fault_stop_signal, startup_arm_ends_with_the_training) {
    struct sigaction sa;
    stop_signal_arm_startup();   // cmd_train
    stop_signal_arm();   // train_run
    stop_signal_arm();   // deeper (nothing does this today): its disarm must not end the startup arm
    stop_signal_disarm();
    handler_of(SIGTERM, &sa);
    cr_assert_neq(sa.sa_handler, SIG_DFL, "the startup arm ended before the training did");
    stop_signal_disarm();   // train_run's training is over
    handler_of(SIGTERM, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL, "SIGTERM after the training must end the process, as before");
    handler_of(SIGINT, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
    raise(SIGUSR1);
    cr_assert_eq(stop_signal_pending(), 0, "a SIGUSR1 after the training left a request");
    stop_signal_end_startup();   // cmd_train: nothing left to end
    stop_signal_arm();   // a later arm works as ever
    raise(SIGTERM);
    cr_assert_eq(stop_signal_pending(), SIGTERM);
    stop_signal_disarm();
}

// A command that fails before its training armed ends the startup arm itself.
Test(fault_stop_signal, startup_arm_ended_by_its_command) {
    struct sigaction sa;
    stop_signal_arm_startup();
    stop_signal_end_startup();
    handler_of(SIGINT, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
    stop_signal_end_startup();   // twice: no effect
    stop_signal_disarm();   // unbalanced: no effect either
    handler_of(SIGTERM, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL);
}

// SIGHUP (the terminal or ssh session a run was started from closed) is a stop request like
// SIGTERM: the run checkpoints, and the handler says which signal it took. It used to end the
// process with no checkpoint. A second one ends it at once; after the training the default is back.
Test(fault_stop_signal, hangup_is_a_stop_request, .init = cr_redirect_stderr) {
    stop_signal_arm();
    raise(SIGHUP);
    cr_assert_eq(stop_signal_pending(), SIGHUP);
    cr_assert_str_eq(stop_signal_name(SIGHUP), "SIGHUP");
    stop_signal_disarm();
    struct sigaction sa;
    handler_of(SIGHUP, &sa);
    cr_assert_eq(sa.sa_handler, SIG_DFL, "SIGHUP after the training must end the process, as before");
    fflush(stderr);
    cr_assert_stderr_eq_str("maskvim: SIGHUP: stopping after this step with a checkpoint (send it again to stop at once)\n");
}

// The set a sweep blocks for its `maskvim train` children until they arm.
Test(fault_stop_signal, stop_set_names_the_four_signals) {
    sigset_t set;
    stop_signal_set(&set);
    cr_expect_eq(sigismember(&set, SIGINT), 1);
    cr_expect_eq(sigismember(&set, SIGTERM), 1);
    cr_expect_eq(sigismember(&set, SIGHUP), 1);
    cr_expect_eq(sigismember(&set, SIGUSR1), 1);
    cr_expect_eq(sigismember(&set, SIGPIPE), 0);
}
