/* What the storage-plugin test programs share (the conformance suite and each plugin's own
 * tests, which dlopen the plugin as the host does): a scratch directory, loading the plugin's
 * descriptor, removing the directory. Header-only: each test is one program. */
#ifndef LD_TEST_PLUGIN_HARNESS_H
#define LD_TEST_PLUGIN_HARNESS_H

#include <litedist/plugin.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Fails the current test when expr does not return want, with the plugin's last error. Needs
 * the test's g_ops and g_st (NULL before the storage exists). */
#define assert_status(expr, want)                                                                  \
    do {                                                                                           \
        ld_status s_ = (expr);                                                                     \
        if (s_ != (want))                                                                          \
            fail_msg("%s returned %d, expected %d (last_error: %s)", #expr, (int)s_, (int)(want),  \
                     g_st ? g_ops->last_error(g_st) : "-");                                        \
    } while (0)

/* Makes <$TMPDIR or /tmp>/<prefix>-XXXXXX into dir. False (said on stderr) when it cannot. */
static inline bool ld_tp_scratch_dir(char *dir, size_t len, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (mkdtemp(dir)) return true;
    fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
    return false;
}

static inline int ld_tp_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes dir and everything in it. */
static inline void ld_tp_remove_dir(const char *dir)
{
    nftw(dir, ld_tp_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dlopens the storage plugin at path (never closed, like the host) and asks its entry point for
 * the descriptor with host; `name` (NULL: any) is the plugin it must be. NULL, said on stderr,
 * when it is not a storage plugin of this ABI major. */
static inline const ld_plugin_descriptor *ld_tp_load_storage(const char *path, const ld_host *host,
                                                             const char *name)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return NULL;
    }
    ld_plugin_entry_fn entry = NULL;
    *(void **)&entry = dlsym(dl, LD_PLUGIN_ENTRY_SYMBOL);
    const ld_plugin_descriptor *desc = entry ? entry(host) : NULL;
    if (!desc || desc->abi_major != LD_ABI_MAJOR || desc->kind != LD_PLUGIN_KIND_STORAGE ||
        (name && strcmp(desc->name, name) != 0)) {
        fprintf(stderr, "%s is not the %s storage plugin of ABI %d\n", path, name ? name : "a",
                LD_ABI_MAJOR);
        return NULL;
    }
    return desc;
}

#endif
