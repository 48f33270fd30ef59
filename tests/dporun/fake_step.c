/* fake_step.c — a step.so that is wrong on purpose, for dporun's refusal tests.
 *
 * Built several times with different definitions: FAKE_ABI (the ABI
 * version it claims), FAKE_FEATURES (the CPU features it claims to need),
 * FAKE_DP (the mesh's dp). Its JSON describes no tensors and no kernels, so
 * a loader that accepts it must still refuse it for lacking the inputs a
 * training step has.
 */
#include "runtime/dpoc_abi.h"

#ifndef FAKE_ABI
#define FAKE_ABI DPOC_ABI_VERSION
#endif
#ifndef FAKE_FEATURES
#define FAKE_FEATURES "+sse2"
#endif
#ifndef FAKE_DP
#define FAKE_DP 1
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

__attribute__((visibility("default"))) const DpocManifest dpoc_manifest = {
    .magic = DPOC_ABI_MAGIC,
    .abi_version = FAKE_ABI,
    .target_cpu = "generic",
    .target_features = FAKE_FEATURES,
    .mesh_dp = FAKE_DP,
    .mesh_tp = 1,
    .json = "{\"mesh\":{\"dp\":" STR(FAKE_DP) ",\"tp\":1},\"regions\":[],"
            "\"tensors\":[],\"functions\":[],\"kernels\":[],\"entries\":[]}",
};
