/* The web configuration file: every key of the exporter-toolkit format accepted or refused with a message
 * that names the file, the key and the line and never a secret; certificates made here with GnuTLS; bcrypt
 * hashes checked, and a failed check as slow for an unknown user as for a wrong password. */
#include <crypt.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fx/web_config.h"

static char dir[] = "/tmp/fx-test-web-config.XXXXXX";
static char path[256];
static char why[512];

static void write_file(const char *name, const char *text)
{
	char file[300];
	snprintf(file, sizeof(file), "%s/%s", dir, name);
	FILE *out = fopen(file, "w");
	CHECK(out != NULL);
	if (!out)
		return;
	fputs(text, out);
	fclose(out);
}

/* A key and a self-signed certificate for 127.0.0.1 as PEM files NAME.key and NAME.pem. */
static void make_cert(const char *name)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	CHECK(gnutls_x509_privkey_init(&key) == 0);
	CHECK(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0);
	CHECK(gnutls_x509_crt_init(&crt) == 0);
	gnutls_x509_crt_set_version(crt, 3);
	unsigned char serial[4] = {1, 2, 3, 4};
	gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	gnutls_x509_crt_set_activation_time(crt, time(NULL) - 60);
	gnutls_x509_crt_set_expiration_time(crt, time(NULL) + 86400);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "127.0.0.1", 9);
	gnutls_x509_crt_set_key(crt, key);
	gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
	CHECK(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) == 0);
	char pem[8192], file[64];
	size_t size = sizeof(pem);
	CHECK(gnutls_x509_privkey_export(key, GNUTLS_X509_FMT_PEM, pem, &size) == 0);
	pem[size] = '\0';
	snprintf(file, sizeof(file), "%s.key", name);
	write_file(file, pem);
	size = sizeof(pem);
	CHECK(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_PEM, pem, &size) == 0);
	pem[size] = '\0';
	snprintf(file, sizeof(file), "%s.pem", name);
	write_file(file, pem);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static struct fx_web_config *load(const char *yaml)
{
	write_file("web.yml", yaml);
	why[0] = '\0';
	return fx_web_config_load(path, why, sizeof(why));
}

/* The file must be refused with a message holding each of the fragments (NULL-terminated). */
static void refused(const char *yaml, const char *fragment, const char *absent)
{
	struct fx_web_config *config = load(yaml);
	CHECK(config == NULL);
	fx_web_config_unref(config);
	bool named = strstr(why, fragment) && strstr(why, path);
	if (!named)
		fprintf(stderr, "  message \"%s\" lacks \"%s\" or the path\n", why, fragment);
	CHECK(named);
	if (absent)
		CHECK(strstr(why, absent) == NULL);
}

static void test_refusals(void)
{
	refused("nonsense: 1\n", "nonsense: unknown key", NULL);
	refused("\n\ntls_server_config:\n  cert_file: server.pem\n  key_fil: server.key\n",
		"line 5: tls_server_config.key_fil: unknown key", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n", "missing key_file", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: "
		"Always\n",
		"client_auth_type: unknown value \"Always\"", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
		"  client_auth_type: RequireAndVerifyClientCert\n",
		"needs client_ca_file", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n"
		"  max_version: TLS12\n",
		"min_version TLS13 is above max_version TLS12", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: SSL3\n",
		"unknown version \"SSL3\"", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n",
		"cannot use cert_file with key_file", NULL);
	refused("tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
		"tls_server_config.cert_file: cannot open", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
		"  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
		"unknown cipher suite \"TLS_RSA_WITH_RC4_128_SHA\"", NULL);
	refused("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
		"  curve_preferences: [CurveP999]\n",
		"unknown curve \"CurveP999\"", NULL);
	refused("basic_auth_users:\n  alice: $2y$10$not-a-real-hash-but-secret\n",
		"basic_auth_users.alice: not a bcrypt hash", "not-a-real-hash-but-secret");
	refused("basic_auth_users:\n  alice: $2y$04$abcdefghijklmnopqrstuuKRAsk8y0LSxO1TZ1LGX8s2yFpZ0e7pa\n"
		"  alice: $2y$04$abcdefghijklmnopqrstuuKRAsk8y0LSxO1TZ1LGX8s2yFpZ0e7pa\n",
		"basic_auth_users.alice: given twice", "KRAsk8y0");
	refused("http_server_config:\n  headers:\n    Server: me\n", "headers.Server: this header cannot be",
		NULL);
	refused("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
		"expected deny or sameorigin", NULL);
	refused("http_server_config:\n  http2: maybe\n", "http2: expected true or false", NULL);
	refused("rate_limit:\n  interval: 1s\n", "rate_limit: not supported", NULL);
	refused("tls_server_config: [1, 2]\n", "tls_server_config.: expected a mapping", NULL);
	refused("key: [unclosed\n", "not valid YAML", NULL);
	refused("tls_server_config:\n  client_ca_file: ca.pem\n", "need cert_file and key_file", NULL);
}

static double seconds_of(struct fx_web_config *config, const char *user, const char *password, int n)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++)
		CHECK(!fx_web_config_authenticate(config, user, password));
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void test_users(void)
{
	char salt[64], yaml[512];
	struct crypt_data data;
	memset(&data, 0, sizeof(data));
	CHECK(crypt_gensalt_rn("$2y$", 9, NULL, 0, salt, sizeof(salt)) != NULL);
	const char *hash = crypt_r("s3cret", salt, &data);
	CHECK(hash && !strncmp(hash, "$2y$09$", 7));
	snprintf(yaml, sizeof(yaml), "basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n", hash, hash);
	struct fx_web_config *config = load(yaml);
	CHECK(config != NULL);
	if (!config) {
		fprintf(stderr, "  %s\n", why);
		return;
	}
	CHECK(fx_web_config_has_users(config));
	CHECK(!fx_web_config_tls(config));
	CHECK(fx_web_config_authenticate(config, "alice", "s3cret"));
	CHECK(fx_web_config_authenticate(config, "alice", "s3cret")); /* cached */
	CHECK(fx_web_config_authenticate(config, "bob", "s3cret"));
	CHECK(!fx_web_config_authenticate(config, "alice", "s3cret "));
	CHECK(!fx_web_config_authenticate(config, "alice", ""));
	CHECK(!fx_web_config_authenticate(config, "carol", "s3cret"));
	CHECK(!fx_web_config_authenticate(config, "", ""));
	/* A wrong password and an unknown user cost the same bcrypt computation. Each is the fastest of 8
	 * single checks, interleaved: the minimum is what the computation costs, whatever else the machine
	 * runs meanwhile (a sum of consecutive checks varied by 2x under load). */
	double wrong = 1e9, unknown = 1e9;
	for (int i = 0; i < 8; i++) {
		double w = seconds_of(config, "alice", "wrong", 1), u = seconds_of(config, "mallory", "wrong", 1);
		wrong = w < wrong ? w : wrong;
		unknown = u < unknown ? u : unknown;
	}
	fprintf(stderr, "  fastest failed check: wrong password %.4f s, unknown user %.4f s\n", wrong, unknown);
	CHECK(unknown > wrong * 0.6 && unknown < wrong * 1.6);
	CHECK(unknown > 0.01); /* the dummy hash was really computed (cost 9: tens of ms) */
	fx_web_config_unref(config);
}

static void test_tls(void)
{
	struct fx_web_config *config =
	    load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
		 "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: server.pem\n"
		 "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, "
		 "CurveP256]\n"
		 "http_server_config:\n  http2: false\n  headers:\n    X-Content-Type-Options: nosniff\n"
		 "    Content-Security-Policy: \"default-src 'self'\"\n");
	CHECK(config != NULL);
	if (!config) {
		fprintf(stderr, "  %s\n", why);
		return;
	}
	CHECK(fx_web_config_tls(config));
	CHECK(fx_web_config_client_auth(config) == FX_CLIENT_AUTH_VERIFY_IF_GIVEN);
	const char *priority = fx_web_config_priority_string(config);
	fprintf(stderr, "  priority: %s\n", priority);
	CHECK(strstr(priority, "+VERS-TLS1.3:+VERS-TLS1.2") != NULL);
	CHECK(strstr(priority, "VERS-TLS1.1") == NULL);
	CHECK(strstr(priority, "+ECDHE-ECDSA") != NULL && strstr(priority, "+AES-128-GCM") != NULL);
	CHECK(strstr(priority, "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1") != NULL);
	CHECK(fx_web_config_cert_not_after(config) > time(NULL));
	CHECK(strstr(fx_web_config_cert_pem(config), "BEGIN CERTIFICATE") != NULL);
	const struct fx_web_header *headers;
	CHECK_EQ_U64(fx_web_config_headers(config, &headers), 2);
	CHECK_STR(headers[0].name, "X-Content-Type-Options");
	CHECK_STR(headers[1].value, "default-src 'self'");
	fx_web_config_unref(config);

	/* Relative names are the file's directory's; an empty file is plain HTTP. */
	config = load("");
	CHECK(config && !fx_web_config_tls(config) && !fx_web_config_has_users(config));
	fx_web_config_unref(config);
}

static void test_stamp(void)
{
	struct fx_web_config *config =
	    load("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
	CHECK(config != NULL);
	struct fx_web_stamp before, after;
	fx_web_config_stamp(config, path, &before);
	fx_web_config_stamp(config, path, &after);
	CHECK(fx_web_stamp_equal(&before, &after));
	make_cert(
	    "server"); /* a rotation rewrites the certificate: the stamp changes though the YAML did not */
	fx_web_config_stamp(config, path, &after);
	CHECK(!fx_web_stamp_equal(&before, &after));
	fx_web_config_unref(config);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/web.yml", dir);
	make_cert("server");
	make_cert("other");
	test_refusals();
	test_users();
	test_tls();
	test_stamp();
	const char *names[] = {"web.yml", "server.pem", "server.key", "other.pem", "other.key"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char file[300];
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		unlink(file);
	}
	rmdir(dir);
	return check_exit();
}
