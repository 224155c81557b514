/* litedistd's operator commands beside the server: backup, restore, export and import of a data
 * directory (docs/backup.md). Each returns the process exit code: 0 done, 1 failed (the reason
 * on stderr), 2 bad command line. */
#ifndef LD_ADMIN_H
#define LD_ADMIN_H

/* litedistd backup [--config FILE] [--plugin-dir DIR] [--data DIR] --out DIR (--data: default
 * Node.DataDirectory of the configuration, as for export and import) */
int ld_cmd_backup(int argc, char **argv);
/* litedistd restore --from DIR --data DIR */
int ld_cmd_restore(int argc, char **argv);
/* litedistd export [--config FILE] [--plugin-dir DIR] [--data DIR] [--database NAME] --out FILE */
int ld_cmd_export(int argc, char **argv);
/* litedistd import [--config FILE] [--plugin-dir DIR] [--data DIR] [--database NAME] --in FILE */
int ld_cmd_import(int argc, char **argv);

#endif
