/*
 * cmd.h — the offline subcommands of the `lsmi` binary. Each takes the
 * argument vector after "lsmi" (argv[0] is the subcommand's name) and
 * returns the process exit status.
 */
#ifndef LSMI_CMD_H
#define LSMI_CMD_H

int lsmi_fit_main(int argc, char **argv);
int lsmi_synth_main(int argc, char **argv);
int lsmi_admin_main(int argc, char **argv);
int lsmi_token_main(int argc, char **argv);

#endif
