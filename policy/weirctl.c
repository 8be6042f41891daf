/* weirctl - the operator's tool for weir
 *
 * SYNOPSIS
 *	weirctl [-c FILE] COMMAND [ARGS]
 *
 * COMMANDS
 *	check		validate weir.conf; every error as file:line: text;
 *			exit 1 on any error
 *	keygen		make a DKIM key pair and print its DNS record
 *	defaults	print every setting with its built-in default
 *	settings	print every setting with its value in weir.conf
 *	version		print the version
 *
 * Later commands (keys, rates, routes, suppression, reports) are added to
 * the command table below. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/keygen.h"

struct command {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv);
	const char *usage;
};

static int cmd_check(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;
	size_t n;

	(void)argc;
	(void)argv;
	cfg = config_load_reported(conf, CONFIG_FOR_ALL, true, &n);
	if (cfg == NULL) {
		fprintf(stderr, "%s: %zu error%s\n", conf, n, n == 1 ? "" : "s");
		return 1;
	}
	printf("%s: ok\n", conf);
	config_unref(cfg);
	return 0;
}

static void print_settings(const struct weir_config *cfg)
{
	for (size_t i = 0; i < weir_settings_count; i++) {
		char *v = setting_format(&weir_settings[i], cfg);
		printf("%s = %s;\n", weir_settings[i].name, v);
		free(v);
	}
}

static int cmd_defaults(const char *conf, int argc, char **argv)
{
	struct config_errors errs;
	struct weir_config *cfg;

	(void)conf;
	(void)argc;
	(void)argv;
	config_errors_init(&errs);
	cfg = config_load_string("(defaults)", "", 0, &errs);
	config_errors_free(&errs);
	if (cfg == NULL)
		return 1;
	print_settings(cfg);
	config_unref(cfg);
	return 0;
}

static int cmd_settings(const char *conf, int argc, char **argv)
{
	struct weir_config *cfg;

	(void)argc;
	(void)argv;
	cfg = config_load_reported(conf, 0, true, NULL);
	if (cfg == NULL)
		return 1;
	print_settings(cfg);
	config_unref(cfg);
	return 0;
}

static int cmd_version(const char *conf, int argc, char **argv)
{
	(void)conf;
	(void)argc;
	(void)argv;
	printf("weirctl %s\n", PACKAGE_VERSION);
	return 0;
}

static int cmd_keygen(const char *conf, int argc, char **argv)
{
	(void)conf;
	return keygen_main(argc, argv);
}

static const struct command commands[] = {
	{"check", cmd_check, "validate weir.conf"},
	{"keygen", cmd_keygen,
	 "--domain D --selector S [--algorithm rsa|ed25519] [--bits N] [--output FILE]: "
	 "a DKIM key and its DNS record"},
	{"defaults", cmd_defaults, "print every setting with its built-in default"},
	{"settings", cmd_settings, "print every setting as weir.conf sets it"},
	{"version", cmd_version, "print the version"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: weirctl [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].usage);
	fprintf(out, "\nFILE defaults to %s\n", config_default_path());
}

int main(int argc, char **argv)
{
	const char *conf = config_default_path();
	int c;

	log_open("weirctl", true, "mail");
	while ((c = getopt(argc, argv, "+c:h")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].run(conf, argc - optind, argv + optind);
	fprintf(stderr, "weirctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
