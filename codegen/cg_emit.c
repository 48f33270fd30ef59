/* cg_emit.c — from the LLVM module to a shared object on disk.
 *
 * cg_target_prepare picks the target: the host triple, and the host CPU
 * name and feature string (LLVMGetHostCPUName / LLVMGetHostCPUFeatures)
 * unless the options name others; it creates a PIC target machine at the
 * aggressive codegen level and gives the module its triple and data layout
 * (the manifest struct is laid out with it). cg_emit_object verifies the
 * module, writes its text when asked (before optimisation), runs the new
 * pass manager's "default<O3>" with loop and SLP vectorisation, unrolling
 * and interleaving switched on (the C API's pipeline options default them
 * off), and writes the object file. cg_link_shared runs `cc -shared -o out
 * obj -lm` with posix_spawnp (no shell), its stderr captured into the error
 * message when it fails; $DPOC_CC replaces `cc`.
 */
#include <errno.h>
#include <fcntl.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cg.h"

extern char **environ;

static char *dup_llvm(char *s) {
    char *r = strdup(s ? s : "");
    if (s) LLVMDisposeMessage(s);
    return r;
}

int cg_target_prepare(Cg *c, const CodegenOptions *o, CgTarget *t) {
    memset(t, 0, sizeof *t);
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) return cg_fail(c, "LLVM has no native target");
    t->triple = dup_llvm(LLVMGetDefaultTargetTriple());
    t->cpu = o->target_cpu ? strdup(o->target_cpu) : dup_llvm(LLVMGetHostCPUName());
    t->features = o->target_features ? strdup(o->target_features) : dup_llvm(LLVMGetHostCPUFeatures());
    if (!t->triple || !t->cpu || !t->features) return cg_fail(c, "out of memory");
    c->features = t->features;
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
        cg_fail(c, "target %s: %s", t->triple, msg ? msg : "unknown");
        LLVMDisposeMessage(msg);
        return -1;
    }
    t->tm = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                    LLVMCodeModelDefault);
    if (!t->tm) return cg_fail(c, "cannot create a target machine for %s (cpu %s)", t->triple, t->cpu);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(t->tm);
    LLVMSetModuleDataLayout(c->mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMSetTarget(c->mod, t->triple);
    return 0;
}

void cg_target_free(CgTarget *t) {
    if (t->tm) LLVMDisposeTargetMachine(t->tm);
    free(t->cpu);
    free(t->features);
    free(t->triple);
    memset(t, 0, sizeof *t);
}

int cg_emit_object(Cg *c, const CodegenOptions *o, CgTarget *t, const char *obj_path) {
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        cg_fail(c, "internal error: generated LLVM module does not verify: %.400s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    msg = NULL;
    if (o->emit_llvm_path && LLVMPrintModuleToFile(c->mod, o->emit_llvm_path, &msg)) {
        cg_fail(c, "%s: %s", o->emit_llvm_path, msg ? msg : "cannot write");
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
    LLVMErrorRef e = LLVMRunPasses(c->mod, "default<O3>", t->tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *em = LLVMGetErrorMessage(e);
        cg_fail(c, "LLVM optimisation failed: %s", em);
        LLVMDisposeErrorMessage(em);
        return -1;
    }
    if (LLVMTargetMachineEmitToFile(t->tm, c->mod, obj_path, LLVMObjectFile, &msg)) {
        cg_fail(c, "writing %s: %s", obj_path, msg ? msg : "failed");
        LLVMDisposeMessage(msg);
        return -1;
    }
    return 0;
}

int cg_link_shared(const char *obj, const char *out, char *err, size_t errlen) {
    const char *cc = getenv("DPOC_CC");
    if (!cc || !*cc) cc = "cc";
    char logpath[] = "/tmp/dpoc-link-XXXXXX";
    int lfd = mkstemp(logpath);
    if (lfd < 0) {
        snprintf(err, errlen, "cannot create a temporary file: %s", strerror(errno));
        return -1;
    }
    close(lfd);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_APPEND, 0);
    posix_spawn_file_actions_addopen(&fa, 2, logpath, O_WRONLY | O_APPEND, 0);
    char *argv[] = {(char *)cc, "-shared", "-o", (char *)out, (char *)obj, "-lm", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, cc, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        unlink(logpath);
        snprintf(err, errlen, "cannot run %s: %s", cc, strerror(rc));
        return -1;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            unlink(logpath);
            snprintf(err, errlen, "waiting for %s: %s", cc, strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(logpath);
        return 0;
    }
    char log[300] = "";
    FILE *f = fopen(logpath, "r");
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = 0;
        fclose(f);
    }
    unlink(logpath);
    snprintf(err, errlen, "%s -shared failed (%s %d): %s", cc, WIFEXITED(status) ? "status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log);
    return -1;
}
