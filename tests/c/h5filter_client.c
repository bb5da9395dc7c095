/* A plain HDF5 C client of the balerfile filter (id 442), built with `h5cc -shlib`.
 * It knows nothing of balerfile but the filter id and the documented cd_values
 * (schemas/h5-filter.md); HDF5 loads libh5z_baler.so from HDF5_PLUGIN_PATH.
 *
 *   h5filter_client write FILE
 *       writes /c/field (f64, 120 x 250, chunks 50 x 250, abs=1e-3) and /c/table (f32,
 *       3000 x 6, chunks 1024 x 6, table, rel=1e-3) with H5Pset_filter (mandatory), and beside
 *       them the same values uncompressed (/c/field_raw, /c/table_raw); and /c/masked (f32,
 *       100 x 200, chunks 50 x 200, rel=1e-3, a third of it the fill value -1e10 set with
 *       H5Pset_fill_value); then reopens the file and checks every element against its bound
 *       (fill elements bit for bit). Exit 0 when all hold.
 *   h5filter_client refuse FILE
 *       tries to create an int32 field through the filter, which it refuses; HDF5 prints its
 *       error stack (with the filter's reason) to stderr. Exit 0 when the creation failed.
 *   h5filter_client check FILE FILTERED RAW TOL
 *       reads two datasets as double and checks |filtered - raw| <= TOL everywhere (TOL < 0:
 *       per column of a 2-D dataset, -TOL times that column's range). Prints the max error.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_ID 442

static void f64_words(double v, unsigned *lo, unsigned *hi) {
    unsigned long long b;
    memcpy(&b, &v, 8);
    *lo = (unsigned)(b & 0xffffffffu);
    *hi = (unsigned)(b >> 32);
}

static int write_pair(hid_t file, const char *name, hid_t ftype, hid_t mtype, const void *data, int rank,
                      const hsize_t *dims, const hsize_t *chunk, const unsigned *cd, size_t ncd,
                      const void *fill) {
    char raw[64];
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (fill) H5Pset_fill_value(dcpl, mtype, fill);
    if (H5Pset_filter(dcpl, FILTER_ID, H5Z_FLAG_MANDATORY, ncd, cd) < 0) {
        fprintf(stderr, "H5Pset_filter failed\n");
        return 1;
    }
    hid_t d = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "H5Dcreate2 %s failed (is the plugin on HDF5_PLUGIN_PATH?)\n", name);
        return 1;
    }
    if (H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 || H5Dclose(d) < 0) {
        fprintf(stderr, "writing %s through the filter failed\n", name);
        return 1;
    }
    snprintf(raw, sizeof raw, "%s_raw", name);
    d = H5Dcreate2(file, raw, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    return 0;
}

/* Reads a dataset as doubles; sets *n and the shape. */
static double *read_all(hid_t file, const char *name, hsize_t *n, hsize_t dims[2], int *rank) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t s = H5Dget_space(d);
    *rank = H5Sget_simple_extent_ndims(s);
    hsize_t all[32];
    H5Sget_simple_extent_dims(s, all, NULL);
    *n = 1;
    for (int i = 0; i < *rank; i++) *n *= all[i];
    dims[0] = *rank > 0 ? all[0] : 1;
    dims[1] = *n / (dims[0] ? dims[0] : 1);
    double *buf = malloc(sizeof(double) * (*n ? *n : 1));
    herr_t r = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(s);
    H5Dclose(d);
    if (r < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Elements of RAW equal to *fill (when given) must come back bit for bit and are left out of
 * the column ranges. */
static int check(hid_t file, const char *filtered, const char *raw, double tol, const double *fill) {
    hsize_t n1, n2, d1[2], d2[2];
    int r1, r2;
    double *a = read_all(file, filtered, &n1, d1, &r1);
    double *b = read_all(file, raw, &n2, d2, &r2);
    if (!a || !b || n1 != n2) {
        fprintf(stderr, "cannot read %s and %s as two arrays of one size\n", filtered, raw);
        return 1;
    }
    hsize_t rows = d2[0], cols = d2[1];
    double worst = 0, maxerr = 0;
    long bad = 0;
    for (hsize_t c = 0; c < cols; c++) {
        double t = tol;
        if (tol < 0) {
            double lo = INFINITY, hi = -INFINITY;
            for (hsize_t r = 0; r < rows; r++) {
                double v = b[r * cols + c];
                if (isfinite(v) && !(fill && v == *fill)) { lo = v < lo ? v : lo; hi = v > hi ? v : hi; }
            }
            t = -tol * (hi >= lo ? hi - lo : 0);
        }
        for (hsize_t r = 0; r < rows; r++) {
            double x = b[r * cols + c], y = a[r * cols + c];
            if (fill && x == *fill) {
                if (memcmp(&x, &y, sizeof x) != 0) bad++;
                continue;
            }
            if (!isfinite(x)) continue;
            double e = fabs(x - y);
            if (!(e <= t)) bad++;
            if (e > maxerr) maxerr = e;
            if (t > 0 && e / t > worst) worst = e / t;
        }
    }
    printf("%s: %llu values, max error %.6g, max error / bound %.6f, %ld outside\n", filtered,
           (unsigned long long)n1, maxerr, worst, bad);
    free(a);
    free(b);
    return bad != 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        hid_t file = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        H5Gclose(H5Gcreate2(file, "c", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        unsigned lo, hi;

        /* A field: version 1, element type left to set_local (0), little endian, field, ...,
         * abs bound 1e-3. */
        hsize_t fd[2] = {120, 250}, fc[2] = {50, 250};
        double *field = malloc(sizeof(double) * 120 * 250);
        for (int i = 0; i < 120; i++)
            for (int j = 0; j < 250; j++) field[i * 250 + j] = 280.0 + 15.0 * sin(i * 0.05) * cos(j * 0.03) + 0.01 * j;
        f64_words(1e-3, &lo, &hi);
        unsigned cd_field[8] = {1, 0, 0, 0, 0, 1, lo, hi};
        if (write_pair(file, "/c/field", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, field, 2, fd, fc, cd_field, 8, NULL)) return 1;

        /* A table: layout 1 (table), rel bound 1e-3 of each column's range in each chunk. */
        hsize_t td[2] = {3000, 6}, tc[2] = {1024, 6};
        float *table = malloc(sizeof(float) * 3000 * 6);
        for (int r = 0; r < 3000; r++)
            for (int c = 0; c < 6; c++) table[r * 6 + c] = (float)(c * 100.0 + (c + 1) * sin(r * 0.01 * (c + 1)) + r * 0.001);
        f64_words(1e-3, &lo, &hi);
        unsigned cd_table[8] = {1, 0, 0, 1, 0, 2, lo, hi};
        if (write_pair(file, "/c/table", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, table, 2, td, tc, cd_table, 8, NULL)) return 1;

        /* A masked field: layout version 2 with everything but the rel bound left to set_local,
         * which takes the dataset's fill value (H5Pset_fill_value) as the missing-value marker. */
        hsize_t md[2] = {100, 200}, mc[2] = {50, 200};
        float *masked = malloc(sizeof(float) * 100 * 200), fill = -1e10f;
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 200; j++)
                masked[i * 200 + j] = j < 70 ? fill : (float)(4.0 + 20.0 * sin(i * 0.04) * cos(j * 0.02));
        f64_words(1e-3, &lo, &hi);
        unsigned cd_masked[5] = {2, 2u << 7, 0, lo, hi};
        if (write_pair(file, "/c/masked", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, masked, 2, md, mc, cd_masked, 5, &fill)) return 1;
        if (H5Fclose(file) < 0) {
            fprintf(stderr, "closing %s failed\n", argv[2]);
            return 1;
        }
        double mlo = INFINITY, mhi = -INFINITY;
        for (int k = 0; k < 100 * 200; k++)
            if (masked[k] != fill) { mlo = masked[k] < mlo ? masked[k] : mlo; mhi = masked[k] > mhi ? masked[k] : mhi; }
        free(field);
        free(table);
        free(masked);

        file = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
        int bad = check(file, "/c/field", "/c/field_raw", 1e-3, NULL);
        /* per column, as the filter bounds each chunk's column range (within the column's). */
        bad |= check(file, "/c/table", "/c/table_raw", -1e-3, NULL);
        /* the valid (not fill) range of the whole field bounds each chunk's */
        double dfill = -1e10f;
        bad |= check(file, "/c/masked", "/c/masked_raw", 1e-3 * (mhi - mlo), &dfill);
        H5Fclose(file);
        return bad;
    }
    if (argc == 6 && strcmp(argv[1], "check") == 0) {
        hid_t file = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
        if (file < 0) return 1;
        int bad = check(file, argv[3], argv[4], atof(argv[5]), NULL);
        H5Fclose(file);
        return bad;
    }
    if (argc == 3 && strcmp(argv[1], "refuse") == 0) {
        hid_t file = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dims[1] = {1000}, chunk[1] = {100};
        unsigned lo, hi;
        f64_words(1.0, &lo, &hi);
        unsigned cd[5] = {2, 1u << 7, 0, lo, hi};
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, chunk);
        H5Pset_filter(dcpl, FILTER_ID, H5Z_FLAG_MANDATORY, 5, cd);
        /* HDF5's default error handler prints the stack to stderr. */
        hid_t d = H5Dcreate2(file, "ints", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (d >= 0) {
            fprintf(stderr, "an int32 field was accepted\n");
            return 1;
        }
        H5Fclose(file);
        return 0;
    }
    fprintf(stderr, "usage: %s write FILE | check FILE FILTERED RAW TOL | refuse FILE\n", argv[0]);
    return 2;
}
