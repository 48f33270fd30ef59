/* fuzz_safetensors.c — libFuzzer target for the safetensors header parser.
 *
 * Feeds the input as a whole safetensors file to st_parse, which must
 * either accept it (then every tensor's data lies inside the buffer, and
 * converting each to f32 must stay in bounds) or refuse it with a message;
 * it must never crash, leak or read past the buffer (ASan/UBSan).
 */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StTensor *t = NULL;
    int n = 0;
    char err[512];
    if (st_parse("fuzz.safetensors", data, size, &t, &n, err, sizeof err) == 0) {
        for (int i = 0; i < n; i++) {
            if (t[i].data < data || t[i].data + t[i].nbytes > data + size) abort();
            if (t[i].numel <= 4096) {
                float buf[4096];
                st_to_f32(&t[i], buf);
            }
        }
        st_tensors_free(t, n);
    }
    return 0;
}
