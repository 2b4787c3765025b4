// eval and predict given a run folder: when the checkpoint its `latest` named is removed while
// it is being read (a training with run.keep_ckpts rotating its files), the failure says so
// instead of a bare "missing or unreadable"; a checkpoint given by file name, or one that is
// still there, leaves the message as it was.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "launch/inference_setup.h"

Test(inference_setup, a_rotated_checkpoint_is_named) {
    const char *root = getenv("MV_TEST_TMP");
    char dir[4096], gone[4200], here[4200];
    snprintf(dir, sizeof dir, "%s/inference_rotated", root && *root ? root : "/tmp");
    mkdir(dir, 0755);
    snprintf(gone, sizeof gone, "%s/iter_25.h5", dir);
    snprintf(here, sizeof here, "%s/iter_26.h5", dir);
    remove(gone);
    FILE *f = fopen(here, "w");
    cr_assert(f);
    fclose(f);

    mv_fail("%s: cannot open (missing or unreadable)", gone);
    inference_explain_rotated(dir, gone);
    cr_expect(strstr(mv_last_error(), "was removed while it was being read") &&
              strstr(mv_last_error(), "run.keep_ckpts") && strstr(mv_last_error(), "missing or unreadable"),
              "%s", mv_last_error());

    mv_fail("%s: cannot open (missing or unreadable)", gone);
    inference_explain_rotated(gone, gone);   // given by name: nothing rotated it under us
    cr_expect_not(strstr(mv_last_error(), "removed while"), "%s", mv_last_error());

    mv_fail("%s: not a readable HDF5 file", here);
    inference_explain_rotated(dir, here);    // still there: another fault
    cr_expect_not(strstr(mv_last_error(), "removed while"), "%s", mv_last_error());
}
