/* The access log's key name: which configured key a request used (Auth.ApiKeys[].Name, "root",
 * "replication"), found from the Auth section of the config, so a log line can say who called
 * without ever holding the key. */
#ifndef LD_AUTH_KEYNAMES_H
#define LD_AUTH_KEYNAMES_H

#include <stddef.h>

#include <jansson.h>

/* Writes the name of key[0..len) into out (outlen bytes): the Name of the Auth.ApiKeys entry
 * whose Key or KeyHash matches, "root" for Auth.RootApiKey(Hash); "" when the config does not
 * hold the key (another auth plugin knows it). root is the merged config tree. Keys are compared
 * in constant time, a KeyHash by the key's BLAKE2b-256. */
void ld_auth_key_name(json_t *root, const char *key, size_t len, char *out, size_t outlen);

#endif
