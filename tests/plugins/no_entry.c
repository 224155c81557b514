/* Test fixture no-entry.so: a shared object that exports a function, but not ld_plugin_entry.
 * The loader must refuse it (e.g. a library given by mistake, or a misspelt entry point). */
#include <litedist/plugin.h>

/* Exported on purpose, so the object is not empty and dlopen succeeds. */
LD_PLUGIN_EXPORT int ld_plugin_entry_misspelt(void);
int ld_plugin_entry_misspelt(void)
{
    return 42;
}
