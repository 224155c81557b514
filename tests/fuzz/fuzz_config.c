/* libFuzzer target for the config loader (core/config/config.c): the input is a config file,
 * then, after the first NUL byte, NUL-separated environment entries ("LITEDIST_Node__Port=1");
 * the file is handed to ld_config_load through a memfd, the entries as its envp. Invariants: a
 * refusal carries a message and leaves the struct cleared; an accepted config has every value in
 * its documented range and hands the plugins object text that parses as a JSON object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENV 32

static int g_fd = -1;
static char g_path[64];

static void check(bool ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok) return;
    fprintf(stderr, "invariant broken: %s\ninput: %.*s\n", what, (int)size, (const char *)data);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ld_log_set_level(LD_LOG_ERROR); /* unknown keys are warnings: thousands a second otherwise */
    g_fd = memfd_create("ld-fuzz-config", 0);
    if (g_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    return 0;
}

static bool is_object_text(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    bool ok = json_is_object(j);
    json_decref(j);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, file_len, 0) != (ssize_t)file_len) abort();

    /* The environment: NUL-separated entries after the file, each copied NUL-terminated. */
    char *envp[MAX_ENV + 1] = {0};
    size_t n = 0;
    for (const uint8_t *p = nul ? nul + 1 : data + size; p < data + size && n < MAX_ENV;) {
        const uint8_t *end = memchr(p, 0, (size_t)(data + size - p));
        size_t len = end ? (size_t)(end - p) : (size_t)(data + size - p);
        envp[n] = strndup((const char *)p, len);
        if (!envp[n]) abort();
        n++;
        p += len + 1;
    }

    ld_config cfg;
    ld_config_overrides ov = {0};
    char err[1024] = "";
    if (!ld_config_load(&cfg, g_path, envp, &ov, err, sizeof err)) {
        check(err[0] != '\0', "a refused config without a message", data, size);
        check(cfg.root == NULL && cfg.storage_json == NULL, "a refused config keeps memory", data,
              size);
    } else {
        check(cfg.port >= 0 && cfg.port <= 65535, "Port out of range", data, size);
        check(cfg.max_body_bytes >= 1024 && cfg.max_header_bytes >= 1024, "limits out of range",
              data, size);
        check(cfg.writer_batch_max >= 1 && cfg.max_query_depth >= 4, "limits out of range", data,
              size);
        check(cfg.log_level >= LD_LOG_ERROR && cfg.log_level <= LD_LOG_DEBUG, "bad log level", data,
              size);
        check(cfg.data_dir && cfg.data_dir[0] && cfg.listen_address && cfg.replication_api_key &&
                  cfg.storage_plugin,
              "a required string is missing", data, size);
        check(cfg.n_auth_plugins >= 1, "no auth plugin", data, size);
        for (size_t i = 0; i < cfg.n_auth_plugins; i++)
            check(cfg.auth_plugins[i] != NULL, "a NULL auth plugin name", data, size);
        for (size_t i = 0; i < cfg.n_cors_origins; i++)
            check(cfg.cors_origins[i] != NULL, "a NULL CORS origin", data, size);
        check(is_object_text(cfg.storage_json), "Storage text is not an object", data, size);
        check(is_object_text(cfg.auth_json), "Auth text is not an object", data, size);
        ld_config_free(&cfg);
    }
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    return 0;
}
