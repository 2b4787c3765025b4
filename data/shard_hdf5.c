// The HDF5 helpers the shard writer and reader share (shard_hdf5.h).
#include "data/shard_hdf5.h"
#include <string.h>
#include "data/shard.h"

void shard_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

int shard_attr_get_str(char *out, size_t cap, hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        size_t sz = H5Tget_size(ft);
        if (sz < cap) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz);
            memset(out, 0, cap);
            rc = H5Aread(a, mt, out) < 0 ? -1 : 0;
            H5Tclose(mt);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int shard_attr_get_i64(int64_t *out, hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, out) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

hid_t shard_string_type(size_t size) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    return t;
}

hid_t shard_name_type(void) { return shard_string_type(MV_SAMPLE_NAME_MAX); }
