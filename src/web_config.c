/* The web configuration file, in the exporter-toolkit format (docs/web-configuration.md of
 * prometheus/exporter-toolkit), parsed with libyaml's document loader and validated in one pass:
 *
 *   tls_server_config:   cert_file/key_file (or cert/key inline), client_ca_file (or client_ca),
 *                        client_auth_type, min_version, max_version, cipher_suites,
 *                        prefer_server_cipher_suites, curve_preferences, client_allowed_sans
 *   http_server_config:  http2 (accepted; libmicrohttpd serves HTTP/1.1 only), headers
 *   basic_auth_users:    user: bcrypt hash ($2y$, $2b$, $2a$, as htpasswd -B makes them)
 *
 * Every unknown key is an error (the toolkit's strict unmarshalling does the same), so a typo never
 * silently turns off a protection. Relative file names are taken from the configuration file's
 * directory, as the toolkit does. The certificate, key and CA are loaded into GnuTLS credentials here, so
 * that a key that does not match its certificate, or an unreadable CA, is a bad file like any other.
 *
 * Thread: loading runs on whichever thread asks (main at start, a reload on SIGHUP or on change); a loaded
 * configuration is immutable except for the login cache, which has its own lock. Secrets (the key, the
 * hashes) are wiped when the configuration is freed and never written to a message. */
#include "fx/web_config.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_FILE_BYTES ((size_t)1 << 20)
#define MAX_USERS 256
#define MAX_SANS 64
#define MAX_HEADERS 5
#define LOGIN_CACHE 16
#define HASH_BYTES 32

struct user {
	char *name;
	char *hash;
};

struct san {
	char *text;
	unsigned char ip[16];
	size_t ip_len; /* 4 or 16 when text is an IP address, else 0 */
};

struct fx_web_config {
	atomic_int refs;
	char *path; /* the YAML file (NULL for the empty configuration) */
	/* TLS */
	bool tls;
	enum fx_client_auth client_auth;
	char *files[FX_WEB_STAMP_FILES - 1]; /* cert, key, CA: the files watched for changes */
	char *cert_pem, *key_pem, *ca_pem;
	size_t key_len;
	gnutls_certificate_credentials_t credentials;
	gnutls_priority_t priority;
	char priority_string[1024];
	struct san sans[MAX_SANS];
	size_t n_sans;
	long long not_after;
	/* basic auth */
	struct user users[MAX_USERS];
	size_t n_users;
	char dummy_hash[128];
	pthread_mutex_t cache_lock;
	unsigned char cache[LOGIN_CACHE][HASH_BYTES];
	size_t n_cache, next_cache;
	/* headers */
	struct fx_web_header headers[MAX_HEADERS];
	size_t n_headers;
};

/* What the YAML said, before it is turned into credentials. */
struct parse {
	const char *path;
	yaml_document_t doc;
	char *why;
	size_t why_size;
	struct fx_web_config *config;
	const char *cert_file, *key_file, *ca_file; /* as written */
	const char *cert, *key, *ca;		    /* inline PEM */
	const char *client_auth, *min_version, *max_version;
	yaml_node_t *cipher_suites, *curves;
	bool prefer_server;
	bool tls_section;
};

static const char *const client_auth_names[] = {"NoClientCert", "RequestClientCert", "RequireAnyClientCert",
						"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"};

/* ---- errors ---- */

static int bad(struct parse *p, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(struct parse *p, const yaml_node_t *node, const char *fmt, ...)
{
	int n = node ? snprintf(p->why, p->why_size, "%s: line %zu: ", p->path, node->start_mark.line + 1)
		     : snprintf(p->why, p->why_size, "%s: ", p->path);
	if (n < 0 || (size_t)n >= p->why_size)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->why + n, p->why_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- files ---- */

/* The whole file, NUL-terminated, at most MAX_FILE_BYTES. */
static char *read_file(const char *path, size_t *len, char *why, size_t why_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_size, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *data = malloc(MAX_FILE_BYTES + 1);
	size_t used = 0;
	while (data && used <= MAX_FILE_BYTES) {
		ssize_t n = read(fd, data + used, MAX_FILE_BYTES + 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
			free(data);
			data = NULL;
		} else if (n == 0) {
			break;
		}
		used += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	if (data && used > MAX_FILE_BYTES) {
		snprintf(why, why_size, "%s is larger than %zu bytes", path, MAX_FILE_BYTES);
		free(data);
		return NULL;
	}
	if (!data)
		return NULL;
	data[used] = '\0';
	*len = used;
	return data;
}

/* A name from the file, relative to the file's directory unless absolute. */
static char *resolve(const char *config_path, const char *name)
{
	if (name[0] == '/')
		return strdup(name);
	const char *slash = strrchr(config_path, '/');
	size_t dir_len = slash ? (size_t)(slash - config_path) + 1 : 0;
	size_t len = dir_len + strlen(name) + 1;
	char *path = malloc(len);
	if (path)
		snprintf(path, len, "%.*s%s", (int)dir_len, config_path, name);
	return path;
}

static char *load_pem(struct parse *p, const char *key, const char *file, const char *inline_pem, size_t *len,
		      char **resolved)
{
	if (inline_pem) {
		*len = strlen(inline_pem);
		return strdup(inline_pem);
	}
	*resolved = resolve(p->path, file);
	if (!*resolved) {
		bad(p, NULL, "out of memory");
		return NULL;
	}
	char why[300];
	char *pem = read_file(*resolved, len, why, sizeof(why));
	if (!pem)
		bad(p, NULL, "tls_server_config.%s: %s", key, why);
	return pem;
}

/* ---- YAML helpers ---- */

static const char *scalar(const yaml_node_t *node)
{
	if (!node || node->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)node->data.scalar.value;
}

/* A scalar that YAML means as nothing ("", "~", "null"): the key is as good as absent. */
static bool is_null(const yaml_node_t *node)
{
	const char *text = scalar(node);
	return text && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!*text || !strcmp(text, "~") || !strcmp(text, "null"));
}

static int want_string(struct parse *p, const char *section, const char *key, yaml_node_t *node,
		       const char **out)
{
	if (is_null(node)) {
		*out = NULL;
		return 0;
	}
	if (!scalar(node))
		return bad(p, node, "%s%s: expected a string", section, key);
	*out = scalar(node);
	return 0;
}

static int want_bool(struct parse *p, const char *section, const char *key, yaml_node_t *node, bool *out)
{
	const char *text = scalar(node);
	if (text && !strcmp(text, "true"))
		*out = true;
	else if (text && !strcmp(text, "false"))
		*out = false;
	else
		return bad(p, node, "%s%s: expected true or false", section, key);
	return 0;
}

typedef int (*pair_fn)(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value);

/* Calls fn on every pair of a mapping; refuses anything else and duplicate keys. */
static int for_each_pair(struct parse *p, const char *what, yaml_node_t *node, pair_fn fn)
{
	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return bad(p, node, "%s: expected a mapping", what);
	for (yaml_node_pair_t *pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *key = yaml_document_get_node(&p->doc, pair->key);
		yaml_node_t *value = yaml_document_get_node(&p->doc, pair->value);
		const char *name = scalar(key);
		if (!name)
			return bad(p, key, "%s: keys must be strings", what);
		for (yaml_node_pair_t *seen = node->data.mapping.pairs.start; seen < pair; seen++)
			if (!strcmp(scalar(yaml_document_get_node(&p->doc, seen->key)), name))
				return bad(p, key, "%s%s: given twice", what, name);
		if (fn(p, name, key, value))
			return -1;
	}
	return 0;
}

/* ---- tls_server_config ---- */

static int tls_pair(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value)
{
	static const char section[] = "tls_server_config.";
	struct {
		const char *name;
		const char **field;
	} strings[] = {
	    {"cert_file", &p->cert_file},
	    {"key_file", &p->key_file},
	    {"client_ca_file", &p->ca_file},
	    {"cert", &p->cert},
	    {"key", &p->key},
	    {"client_ca", &p->ca},
	    {"client_auth_type", &p->client_auth},
	    {"min_version", &p->min_version},
	    {"max_version", &p->max_version},
	};
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!strcmp(key, strings[i].name))
			return want_string(p, section, key, value, strings[i].field);
	if (!strcmp(key, "prefer_server_cipher_suites"))
		return want_bool(p, section, key, value, &p->prefer_server);
	yaml_node_t **lists[] = {&p->cipher_suites, &p->curves, NULL};
	const char *list_names[] = {"cipher_suites", "curve_preferences", "client_allowed_sans"};
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(key, list_names[i]))
			continue;
		if (is_null(value))
			return 0;
		if (value->type != YAML_SEQUENCE_NODE)
			return bad(p, value, "%s%s: expected a list", section, key);
		if (lists[i]) {
			*lists[i] = value;
			return 0;
		}
		struct fx_web_config *config = p->config;
		for (yaml_node_item_t *item = value->data.sequence.items.start;
		     item < value->data.sequence.items.top; item++) {
			yaml_node_t *san = yaml_document_get_node(&p->doc, *item);
			if (!scalar(san) || !*scalar(san))
				return bad(p, san, "%s%s: expected a list of names", section, key);
			if (config->n_sans == MAX_SANS)
				return bad(p, san, "%s%s: more than %d names", section, key, MAX_SANS);
			struct san *entry = &config->sans[config->n_sans++];
			if (!(entry->text = strdup(scalar(san))))
				return bad(p, san, "out of memory");
			if (inet_pton(AF_INET, entry->text, entry->ip) == 1)
				entry->ip_len = 4;
			else if (inet_pton(AF_INET6, entry->text, entry->ip) == 1)
				entry->ip_len = 16;
		}
		return 0;
	}
	return bad(p, key_node, "%s%s: unknown key", section, key);
}

static int parse_version(struct parse *p, const char *key, const char *text, int fallback, int *out)
{
	if (!text) {
		*out = fallback;
		return 0;
	}
	static const char *const names[] = {"TLS10", "TLS11", "TLS12", "TLS13"};
	for (int i = 0; i < 4; i++) {
		if (!strcmp(text, names[i])) {
			*out = i;
			return 0;
		}
	}
	return bad(p, NULL, "tls_server_config.%s: unknown version \"%s\" (TLS10, TLS11, TLS12 or TLS13)",
		   key, text);
}

/* Go's cipher suite names, as GnuTLS priority elements (key exchange, cipher, MAC). The TLS 1.3 suites
 * are accepted and ignored, as in Go: TLS 1.3 always uses its own. */
static const struct {
	const char *name, *kx, *cipher, *mac;
} cipher_suites[] = {
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "AES-128-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "RSA", "AES-256-CBC", "SHA1"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "AES-128-GCM", "AEAD"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"},
    {"TLS_AES_128_GCM_SHA256", NULL, NULL, NULL},
    {"TLS_AES_256_GCM_SHA384", NULL, NULL, NULL},
    {"TLS_CHACHA20_POLY1305_SHA256", NULL, NULL, NULL},
};

static const struct {
	const char *name, *group;
} curves[] = {
    {"CurveP256", "SECP256R1"}, {"CurveP384", "SECP384R1"}, {"CurveP521", "SECP521R1"}, {"X25519", "X25519"}};

/* Appends text to the priority string, within its size. */
static int append_raw(struct parse *p, char *out, const char *text)
{
	size_t used = strlen(out), len = strlen(text);
	if (used + len + 1 > sizeof(p->config->priority_string))
		return bad(p, NULL, "tls_server_config: too many cipher suites or curves");
	memcpy(out + used, text, len + 1);
	return 0;
}

/* Appends ":+<element>" unless already there. */
static int append(struct parse *p, char *out, const char *element)
{
	char item[64];
	snprintf(item, sizeof(item), ":+%s", element);
	size_t len = strlen(item);
	for (const char *at = strstr(out, item); at; at = strstr(at + 1, item))
		if (at[len] == ':' || at[len] == '\0')
			return 0;
	return append_raw(p, out, item);
}

static int priority_ciphers(struct parse *p, char *out, int max)
{
	yaml_node_t *list = p->cipher_suites;
	if (append_raw(p, out, ":-KX-ALL:-CIPHER-ALL:-MAC-ALL"))
		return -1;
	for (yaml_node_item_t *item = list->data.sequence.items.start; item < list->data.sequence.items.top;
	     item++) {
		yaml_node_t *node = yaml_document_get_node(&p->doc, *item);
		const char *name = scalar(node);
		size_t i = 0, n = sizeof(cipher_suites) / sizeof(cipher_suites[0]);
		while (name && i < n && strcmp(name, cipher_suites[i].name))
			i++;
		if (i == n || !name)
			return bad(p, node, "tls_server_config.cipher_suites: unknown cipher suite \"%s\"",
				   name ? name : "");
		if (cipher_suites[i].kx &&
		    (append(p, out, cipher_suites[i].kx) || append(p, out, cipher_suites[i].cipher) ||
		     append(p, out, cipher_suites[i].mac)))
			return -1;
	}
	if (max == 3) /* TLS 1.3's own suites stay */
		for (size_t i = 0; i < 3; i++)
			if (append(p, out,
				   (const char *[]){"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305"}[i]) ||
			    append(p, out, "AEAD"))
				return -1;
	return 0;
}

static int priority_curves(struct parse *p, char *out)
{
	yaml_node_t *list = p->curves;
	if (append_raw(p, out, ":-GROUP-ALL"))
		return -1;
	for (yaml_node_item_t *item = list->data.sequence.items.start; item < list->data.sequence.items.top;
	     item++) {
		yaml_node_t *node = yaml_document_get_node(&p->doc, *item);
		const char *name = scalar(node);
		size_t i = 0, n = sizeof(curves) / sizeof(curves[0]);
		while (name && i < n && strcmp(name, curves[i].name))
			i++;
		if (i == n || !name)
			return bad(p, node,
				   "tls_server_config.curve_preferences: unknown curve \"%s\" (CurveP256, "
				   "CurveP384, "
				   "CurveP521, X25519)",
				   name ? name : "");
		char group[32];
		snprintf(group, sizeof(group), "GROUP-%s", curves[i].group);
		if (append(p, out, group))
			return -1;
	}
	return 0;
}

/* The GnuTLS priority string: versions min..max, then the cipher suites and curves if given. */
static int build_priority(struct parse *p)
{
	struct fx_web_config *config = p->config;
	char *out = config->priority_string;
	int min = 2, max = 3;
	if (parse_version(p, "min_version", p->min_version, 2, &min) ||
	    parse_version(p, "max_version", p->max_version, 3, &max))
		return -1;
	if (min > max)
		return bad(p, NULL, "tls_server_config: min_version %s is above max_version %s",
			   p->min_version ? p->min_version : "TLS12",
			   p->max_version ? p->max_version : "TLS13");
	snprintf(out, sizeof(config->priority_string), "NORMAL:-VERS-ALL");
	for (int v = max; v >= min; v--) {
		char version[16];
		snprintf(version, sizeof(version), "VERS-TLS1.%d", v);
		if (append(p, out, version))
			return -1;
	}
	if (p->cipher_suites && priority_ciphers(p, out, max))
		return -1;
	if (p->curves && priority_curves(p, out))
		return -1;
	if (p->prefer_server && append_raw(p, out, ":%SERVER_PRECEDENCE"))
		return -1;
	const char *where = NULL;
	int rc = gnutls_priority_init(&config->priority, out, &where);
	if (rc != GNUTLS_E_SUCCESS)
		return bad(p, NULL,
			   "tls_server_config: GnuTLS refuses the versions or cipher suites (%s, at \"%s\")",
			   gnutls_strerror(rc), where ? where : "");
	return 0;
}

static int load_client_auth(struct parse *p)
{
	struct fx_web_config *config = p->config;
	config->client_auth = FX_CLIENT_AUTH_NONE;
	if (p->client_auth) {
		size_t i = 0;
		while (i < 5 && strcmp(p->client_auth, client_auth_names[i]))
			i++;
		if (i == 5)
			return bad(p, NULL,
				   "tls_server_config.client_auth_type: unknown value \"%s\" (NoClientCert, "
				   "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
				   "RequireAndVerifyClientCert)",
				   p->client_auth);
		config->client_auth = (enum fx_client_auth)i;
	}
	bool verifies = config->client_auth == FX_CLIENT_AUTH_VERIFY_IF_GIVEN ||
			config->client_auth == FX_CLIENT_AUTH_REQUIRE_AND_VERIFY;
	bool has_ca = p->ca_file || p->ca;
	if (verifies && !has_ca)
		return bad(p, NULL, "tls_server_config: client_auth_type %s needs client_ca_file",
			   client_auth_names[config->client_auth]);
	if (config->n_sans && config->client_auth != FX_CLIENT_AUTH_REQUIRE_ANY &&
	    config->client_auth != FX_CLIENT_AUTH_REQUIRE_AND_VERIFY)
		return bad(p, NULL,
			   "tls_server_config.client_allowed_sans needs client_auth_type "
			   "RequireAnyClientCert or RequireAndVerifyClientCert");
	if (!has_ca)
		return 0;
	size_t len = 0;
	config->ca_pem = load_pem(p, "client_ca_file", p->ca_file, p->ca, &len, &config->files[2]);
	if (!config->ca_pem)
		return -1;
	gnutls_datum_t ca = {(unsigned char *)config->ca_pem, (unsigned)len};
	int n = gnutls_certificate_set_x509_trust_mem(config->credentials, &ca, GNUTLS_X509_FMT_PEM);
	if (n <= 0)
		return bad(p, NULL, "tls_server_config.client_ca_file: no usable CA certificate (%s)",
			   n < 0 ? gnutls_strerror(n) : "none found");
	return 0;
}

static long long cert_not_after(const char *pem, size_t len)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t data = {(unsigned char *)pem, (unsigned)len};
	long long not_after = 0;
	if (gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM) == 0)
		not_after = (long long)gnutls_x509_crt_get_expiration_time(crt);
	gnutls_x509_crt_deinit(crt);
	return not_after;
}

static int build_tls(struct parse *p)
{
	struct fx_web_config *config = p->config;
	bool any = p->cert_file || p->key_file || p->cert || p->key;
	if (!any) {
		if (p->ca_file || p->ca || p->client_auth)
			return bad(p, NULL,
				   "tls_server_config: client_ca_file and client_auth_type need "
				   "cert_file and key_file");
		return 0;
	}
	if (p->cert_file && p->cert)
		return bad(p, NULL, "tls_server_config: cert and cert_file exclude each other");
	if (p->key_file && p->key)
		return bad(p, NULL, "tls_server_config: key and key_file exclude each other");
	if (p->ca_file && p->ca)
		return bad(p, NULL, "tls_server_config: client_ca and client_ca_file exclude each other");
	if (!p->cert_file && !p->cert)
		return bad(p, NULL, "tls_server_config: missing cert_file");
	if (!p->key_file && !p->key)
		return bad(p, NULL, "tls_server_config: missing key_file");
	config->tls = true;
	size_t cert_len = 0;
	config->cert_pem = load_pem(p, "cert_file", p->cert_file, p->cert, &cert_len, &config->files[0]);
	if (!config->cert_pem)
		return -1;
	config->key_pem = load_pem(p, "key_file", p->key_file, p->key, &config->key_len, &config->files[1]);
	if (!config->key_pem)
		return -1;
	if (gnutls_certificate_allocate_credentials(&config->credentials) < 0)
		return bad(p, NULL, "out of memory");
	gnutls_datum_t cert = {(unsigned char *)config->cert_pem, (unsigned)cert_len};
	gnutls_datum_t key = {(unsigned char *)config->key_pem, (unsigned)config->key_len};
	int rc = gnutls_certificate_set_x509_key_mem2(config->credentials, &cert, &key, GNUTLS_X509_FMT_PEM,
						      NULL, 0);
	if (rc < 0)
		return bad(p, NULL, "tls_server_config: cannot use cert_file with key_file: %s",
			   gnutls_strerror(rc));
	config->not_after = cert_not_after(config->cert_pem, cert_len);
	if (load_client_auth(p))
		return -1;
	return build_priority(p);
}

/* ---- http_server_config ---- */

static int header_pair(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value)
{
	static const char *const allowed[MAX_HEADERS] = {"Content-Security-Policy", "X-Frame-Options",
							 "X-Content-Type-Options", "X-XSS-Protection",
							 "Strict-Transport-Security"};
	size_t i = 0;
	while (i < MAX_HEADERS && strcmp(key, allowed[i]))
		i++;
	if (i == MAX_HEADERS)
		return bad(
		    p, key_node,
		    "http_server_config.headers.%s: this header cannot be configured "
		    "(Content-Security-Policy, "
		    "X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security)",
		    key);
	const char *text = NULL;
	if (want_string(p, "http_server_config.headers.", key, value, &text))
		return -1;
	if (!text || !*text)
		return 0; /* blank: unset */
	for (const char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return bad(p, value, "http_server_config.headers.%s: control character in the value",
				   key);
	if (i == 1 && strcasecmp(text, "deny") && strcasecmp(text, "sameorigin"))
		return bad(p, value,
			   "http_server_config.headers.X-Frame-Options: expected deny or sameorigin");
	if (i == 2 && strcasecmp(text, "nosniff"))
		return bad(p, value, "http_server_config.headers.X-Content-Type-Options: expected nosniff");
	struct fx_web_config *config = p->config;
	struct fx_web_header *header = &config->headers[config->n_headers];
	header->name = allowed[i];
	if (!(header->value = strdup(text)))
		return bad(p, value, "out of memory");
	config->n_headers++;
	return 0;
}

static int http_pair(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value)
{
	if (!strcmp(key, "http2")) {
		bool ignored;
		return want_bool(p, "http_server_config.", key, value, &ignored);
	}
	if (!strcmp(key, "headers"))
		return for_each_pair(p, "http_server_config.headers.", value, header_pair);
	return bad(p, key_node, "http_server_config.%s: unknown key", key);
}

/* ---- basic_auth_users ---- */

/* $2a$, $2b$ or $2y$, a two-digit cost from 04 to 31, '$', 53 characters of bcrypt's base64. */
static int bcrypt_cost(const char *hash)
{
	if (strlen(hash) != 60 || hash[0] != '$' || hash[1] != '2' || !strchr("aby", hash[2]) ||
	    hash[3] != '$' || hash[6] != '$' || hash[4] < '0' || hash[4] > '3' || hash[5] < '0' ||
	    hash[5] > '9')
		return -1;
	int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
	if (cost < 4 || cost > 31)
		return -1;
	for (const char *c = hash + 7; *c; c++)
		if (!strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", *c))
			return -1;
	return cost;
}

static int user_pair(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value)
{
	struct fx_web_config *config = p->config;
	const char *hash = scalar(value);
	/* The user's name may be shown; the hash never is. */
	if (!*key || strchr(key, ':'))
		return bad(p, key_node, "basic_auth_users: \"%s\" is not a valid user name", key);
	if (!hash || bcrypt_cost(hash) < 0)
		return bad(p, value,
			   "basic_auth_users.%s: not a bcrypt hash (make one with htpasswd -nBC 10 \"\")",
			   key);
	if (config->n_users == MAX_USERS)
		return bad(p, key_node, "basic_auth_users: more than %d users", MAX_USERS);
	struct user *user = &config->users[config->n_users];
	user->name = strdup(key);
	user->hash = strdup(hash);
	config->n_users++;
	return user->name && user->hash ? 0 : bad(p, value, "out of memory");
}

/* A hash of a random password at the highest cost of the users: an unknown user costs as much time as a
 * known one with a wrong password. */
static int make_dummy_hash(struct parse *p)
{
	struct fx_web_config *config = p->config;
	int cost = 0;
	for (size_t i = 0; i < config->n_users; i++) {
		int c = bcrypt_cost(config->users[i].hash);
		cost = c > cost ? c : cost;
	}
	if (!config->n_users)
		return 0;
	char salt[64], password[33];
	unsigned char random[16];
	if (gnutls_rnd(GNUTLS_RND_NONCE, random, sizeof(random)) < 0 ||
	    !crypt_gensalt_rn("$2b$", (unsigned long)cost, (const char *)random, sizeof(random), salt,
			      sizeof(salt)))
		return bad(p, NULL, "basic_auth_users: cannot make a bcrypt salt: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(random); i++)
		snprintf(password + 2 * i, 3, "%02x", random[i]);
	struct crypt_data *data = calloc(1, sizeof(*data));
	const char *hash = data ? crypt_r(password, salt, data) : NULL;
	if (!hash || hash[0] != '$' || strlen(hash) >= sizeof(config->dummy_hash)) {
		free(data);
		return bad(p, NULL, "basic_auth_users: this system's crypt_r does not do bcrypt");
	}
	snprintf(config->dummy_hash, sizeof(config->dummy_hash), "%s", hash);
	free(data);
	return 0;
}

/* ---- the file ---- */

static int root_pair(struct parse *p, const char *key, yaml_node_t *key_node, yaml_node_t *value)
{
	if (!strcmp(key, "tls_server_config")) {
		p->tls_section = true;
		return for_each_pair(p, "tls_server_config.", value, tls_pair);
	}
	if (!strcmp(key, "http_server_config"))
		return for_each_pair(p, "http_server_config.", value, http_pair);
	if (!strcmp(key, "basic_auth_users"))
		return for_each_pair(p, "basic_auth_users.", value, user_pair);
	if (!strcmp(key, "rate_limit"))
		return bad(p, key_node,
			   "rate_limit: not supported by flow-exporter (see --web-max-connections-per-ip)");
	return bad(p, key_node, "%s: unknown key (tls_server_config, http_server_config, basic_auth_users)",
		   key);
}

static struct fx_web_config *new_config(void)
{
	struct fx_web_config *config = calloc(1, sizeof(*config));
	if (!config)
		return NULL;
	atomic_init(&config->refs, 1);
	if (pthread_mutex_init(&config->cache_lock, NULL) != 0) {
		free(config);
		return NULL;
	}
	return config;
}

struct fx_web_config *fx_web_config_empty(void)
{
	return new_config();
}

static int parse_document(struct parse *p, const char *text, size_t len)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return bad(p, NULL, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &p->doc)) {
		bad(p, NULL, "line %zu: not valid YAML: %s", parser.problem_mark.line + 1,
		    parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		return -1;
	}
	yaml_parser_delete(&parser);
	yaml_node_t *root = yaml_document_get_root_node(&p->doc);
	int rc = 0;
	if (root && !is_null(root))
		rc = root->type == YAML_MAPPING_NODE ? for_each_pair(p, "", root, root_pair)
						     : bad(p, root, "expected a mapping at the top");
	if (rc == 0)
		rc = build_tls(p);
	if (rc == 0)
		rc = make_dummy_hash(p);
	yaml_document_delete(&p->doc);
	return rc;
}

struct fx_web_config *fx_web_config_load(const char *path, char *why, size_t why_size)
{
	struct parse p = {.path = path, .why = why, .why_size = why_size, .prefer_server = true};
	size_t len = 0;
	char read_why[300];
	char *text = read_file(path, &len, read_why, sizeof(read_why));
	if (!text) {
		snprintf(why, why_size, "%s", read_why);
		return NULL;
	}
	p.config = new_config();
	if (!p.config || !(p.config->path = strdup(path))) {
		snprintf(why, why_size, "out of memory");
		free(text);
		fx_web_config_unref(p.config);
		return NULL;
	}
	int rc = parse_document(&p, text, len);
	free(text);
	if (rc) {
		fx_web_config_unref(p.config);
		return NULL;
	}
	return p.config;
}

struct fx_web_config *fx_web_config_ref(struct fx_web_config *config)
{
	atomic_fetch_add(&config->refs, 1);
	return config;
}

static void wipe_free(char *secret, size_t len)
{
	if (secret)
		explicit_bzero(secret, len);
	free(secret);
}

void fx_web_config_unref(struct fx_web_config *config)
{
	if (!config || atomic_fetch_sub(&config->refs, 1) != 1)
		return;
	if (config->priority)
		gnutls_priority_deinit(config->priority);
	if (config->credentials)
		gnutls_certificate_free_credentials(config->credentials);
	for (size_t i = 0; i < FX_WEB_STAMP_FILES - 1; i++)
		free(config->files[i]);
	free(config->cert_pem);
	free(config->ca_pem);
	wipe_free(config->key_pem, config->key_len);
	for (size_t i = 0; i < config->n_sans; i++)
		free(config->sans[i].text);
	for (size_t i = 0; i < config->n_users; i++) {
		free(config->users[i].name);
		wipe_free(config->users[i].hash, strlen(config->users[i].hash));
	}
	for (size_t i = 0; i < config->n_headers; i++)
		free((char *)config->headers[i].value);
	explicit_bzero(config->cache, sizeof(config->cache));
	pthread_mutex_destroy(&config->cache_lock);
	free(config->path);
	free(config);
}

/* ---- accessors ---- */

bool fx_web_config_tls(const struct fx_web_config *config)
{
	return config->tls;
}
enum fx_client_auth fx_web_config_client_auth(const struct fx_web_config *config)
{
	return config->client_auth;
}
gnutls_certificate_credentials_t fx_web_config_credentials(const struct fx_web_config *config)
{
	return config->credentials;
}
gnutls_priority_t fx_web_config_priority(const struct fx_web_config *config)
{
	return config->priority;
}
const char *fx_web_config_priority_string(const struct fx_web_config *config)
{
	return config->priority_string;
}
const char *fx_web_config_cert_pem(const struct fx_web_config *config)
{
	return config->cert_pem;
}
const char *fx_web_config_key_pem(const struct fx_web_config *config)
{
	return config->key_pem;
}
long long fx_web_config_cert_not_after(const struct fx_web_config *config)
{
	return config->not_after;
}
bool fx_web_config_has_users(const struct fx_web_config *config)
{
	return config->n_users > 0;
}

size_t fx_web_config_headers(const struct fx_web_config *config, const struct fx_web_header **headers)
{
	*headers = config->headers;
	return config->n_headers;
}

bool fx_web_config_san_allowed(const struct fx_web_config *config, const gnutls_datum_t *der)
{
	if (!config->n_sans)
		return true;
	gnutls_x509_crt_t crt;
	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	bool allowed = false;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) == 0) {
		for (unsigned i = 0; !allowed; i++) {
			char name[512];
			size_t size = sizeof(name) - 1;
			int type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &size, NULL);
			if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
				break;
			if (type < 0)
				continue;
			name[size] = '\0';
			for (size_t s = 0; s < config->n_sans && !allowed; s++) {
				const struct san *san = &config->sans[s];
				if (type == GNUTLS_SAN_IPADDRESS)
					allowed = san->ip_len && san->ip_len == size &&
						  !memcmp(san->ip, name, size);
				else
					allowed = strlen(san->text) == size && !memcmp(san->text, name, size);
			}
		}
	}
	gnutls_x509_crt_deinit(crt);
	return allowed;
}

/* ---- authentication ---- */

static bool equal_in_constant_time(const char *a, const char *b, size_t len)
{
	unsigned char diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* SHA-256 of user, password and hash: the key of a cached success (the password itself is not kept). */
static int login_key(const char *user, const char *password, const char *hash, unsigned char *key)
{
	size_t lens[3] = {strlen(user) + 1, strlen(password) + 1, strlen(hash)};
	size_t total = lens[0] + lens[1] + lens[2];
	char *text = malloc(total);
	if (!text)
		return -1;
	memcpy(text, user, lens[0]);
	memcpy(text + lens[0], password, lens[1]);
	memcpy(text + lens[0] + lens[1], hash, lens[2]);
	int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, text, total, key);
	explicit_bzero(text, total);
	free(text);
	return rc < 0 ? -1 : 0;
}

static bool cached(struct fx_web_config *config, const unsigned char *key, bool add)
{
	bool found = false;
	pthread_mutex_lock(&config->cache_lock);
	for (size_t i = 0; i < config->n_cache && !found; i++)
		found = memcmp(config->cache[i], key, HASH_BYTES) == 0;
	if (add && !found) {
		memcpy(config->cache[config->next_cache], key, HASH_BYTES);
		config->next_cache = (config->next_cache + 1) % LOGIN_CACHE;
		if (config->n_cache < LOGIN_CACHE)
			config->n_cache++;
	}
	pthread_mutex_unlock(&config->cache_lock);
	return found;
}

bool fx_web_config_authenticate(struct fx_web_config *config, const char *user, const char *password)
{
	const struct user *found = NULL;
	for (size_t i = 0; i < config->n_users; i++)
		if (!strcmp(config->users[i].name, user))
			found = &config->users[i];
	const char *hash = found ? found->hash : config->dummy_hash;
	unsigned char key[HASH_BYTES];
	bool have_key = found && login_key(user, password, hash, key) == 0;
	if (have_key && cached(config, key, false))
		return true;
	struct crypt_data *data = calloc(1, sizeof(*data));
	if (!data)
		return false;
	const char *computed = crypt_r(password, hash, data);
	size_t len = strlen(hash);
	bool ok = computed && strlen(computed) == len && equal_in_constant_time(computed, hash, len) && found;
	explicit_bzero(data, sizeof(*data));
	free(data);
	if (ok && have_key)
		cached(config, key, true);
	return ok;
}

/* ---- change detection ---- */

static void stamp_one(const char *path, struct fx_web_stamp *out, size_t i)
{
	struct stat st;
	if (!path || stat(path, &st) != 0) {
		out->file[i].missing = path != NULL;
		return;
	}
	out->file[i].dev = st.st_dev;
	out->file[i].ino = st.st_ino;
	out->file[i].size = st.st_size;
	out->file[i].mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

void fx_web_config_stamp(const struct fx_web_config *config, const char *path, struct fx_web_stamp *out)
{
	memset(out, 0, sizeof(*out));
	stamp_one(path, out, 0);
	for (size_t i = 0; config && i < FX_WEB_STAMP_FILES - 1; i++)
		stamp_one(config->files[i], out, i + 1);
}

bool fx_web_stamp_equal(const struct fx_web_stamp *a, const struct fx_web_stamp *b)
{
	for (size_t i = 0; i < FX_WEB_STAMP_FILES; i++)
		if (a->file[i].dev != b->file[i].dev || a->file[i].ino != b->file[i].ino ||
		    a->file[i].size != b->file[i].size || a->file[i].mtime_ns != b->file[i].mtime_ns ||
		    a->file[i].missing != b->file[i].missing)
			return false;
	return true;
}
