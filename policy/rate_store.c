/* rate_store - the memory backend of rate limits (one gateway)
 *
 * The decisions are rate_state.c's algorithms; a decision over several
 * items is atomic: all allowed and committed, or nothing committed
 * (unless forced).
 *
 * Memory: 64 shards, each a chained hash table (SipHash with a random key:
 * keys come from the network) under its own mutex; a decision locks the
 * shards of its items in ascending order. An entry is about 100 bytes
 * with its key. The store's clock is the latest now_ms it was charged at
 * (callers pass the time; tests pass fake ones).
 *
 * Persistence: a flush thread wakes every rate.flush_interval, takes the
 * resets weirctl asked for (rate_reset), writes the entries changed since
 * the last flush and drops the idle ones (rate recovered, quota window
 * over) from memory and from the file. The file is read at open, so a
 * restart or a crash loses at most one flush_interval of counting. A
 * failing write is logged once, the entries stay dirty and are written
 * when the file works again. */
#include "autoconf.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "policy/config.h"
#include "policy/rate_mem.h"

#define NSHARDS       64 /* a power of two, at most 64 (a uint64_t mask of shards) */
#define SHARD_BUCKETS 64
#define LOCAL_ITEMS   8

struct entry {
	struct entry *next;
	uint64_t hash;
	struct rate_state st;
	bool dirty;     /* changed since the last flush */
	bool persisted; /* has (or may have) a row in the file */
	char key[];
};

struct shard {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

struct rate_mem {
	struct shard shards[NSHARDS];
	uint64_t k0, k1;       /* SipHash key */
	bool admin;            /* weirctl: the file only */
	atomic_llong now_seen; /* the latest now_ms charged at; 0: none yet */

	pthread_mutex_t db_lock; /* db, db_path, db_failing; taken before shard locks */
	struct rate_db *db;
	char *db_path; /* "" = none */
	bool db_failing;

	pthread_mutex_t ctl_lock; /* stop */
	pthread_cond_t wake;
	bool stop;
	atomic_long flush_interval; /* seconds */
	pthread_t thread;
	bool thread_started;
};

/* SipHash-2-4 (Aumasson, Bernstein) */
/* clang-format off */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                          \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                             \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                             \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                          \
	} while (0)
/* clang-format on */

static uint64_t siphash(const char *s, uint64_t k0, uint64_t k1)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	size_t len = strlen(s), i;
	uint64_t m, b = (uint64_t)len << 56;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, s + i, 8); /* little-endian hosts; the hash stays in this process */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)(unsigned char)s[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* shard_of - the shard from the top bits, the bucket from the low ones */
static size_t shard_of(uint64_t hash)
{
	return (size_t)(hash >> 58) & (NSHARDS - 1);
}

/* strictness - rank of a denying item's action (higher wins) */
static int strictness(int action)
{
	switch (action) {
	case ACTION_REJECT: return 4;
	case ACTION_TEMPFAIL: return 3;
	case ACTION_HOLD: return 2;
	case ACTION_LOG: return 1;
	default: return 0;
	}
}

/* the hash tables; callers hold the shard's lock */

static struct entry *lookup(struct shard *sh, uint64_t hash, const char *key)
{
	for (struct entry *e = sh->buckets[hash & (sh->nbuckets - 1)]; e; e = e->next)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void grow(struct shard *sh)
{
	size_t n = sh->nbuckets * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < sh->nbuckets; i++) {
		struct entry *e = sh->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(sh->buckets);
	sh->buckets = b;
	sh->nbuckets = n;
}

static struct entry *insert(struct shard *sh, uint64_t hash, const char *key,
                            const struct rate_state *st)
{
	size_t len = strlen(key);
	struct entry *e = xmalloc(sizeof(*e) + len + 1);

	e->hash = hash;
	e->st = *st;
	e->dirty = false;
	e->persisted = false;
	memcpy(e->key, key, len + 1);
	if (sh->count >= sh->nbuckets)
		grow(sh);
	e->next = sh->buckets[hash & (sh->nbuckets - 1)];
	sh->buckets[hash & (sh->nbuckets - 1)] = e;
	sh->count++;
	return e;
}

/* unlink_entry - take e out of its chain (*pp points at it) and free it */
static void unlink_entry(struct shard *sh, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->next;
	sh->count--;
	free(e);
}

/* forget - drop key from memory; true if it was there */
static bool forget(struct rate_mem *m, const char *key)
{
	uint64_t hash = siphash(key, m->k0, m->k1);
	struct shard *sh = &m->shards[shard_of(hash)];
	bool found = false;

	pthread_mutex_lock(&sh->lock);
	for (struct entry **pp = &sh->buckets[hash & (sh->nbuckets - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == hash && strcmp((*pp)->key, key) == 0) {
			unlink_entry(sh, pp);
			found = true;
			break;
		}
	pthread_mutex_unlock(&sh->lock);
	return found;
}

/* deciding */

/* One item of a decision: its entry (NULL: a new key) and the state it
 * is decided on, shared by every item with the same key (first) */
struct work {
	uint64_t hash;
	struct entry *e;
	struct rate_state st;
	size_t first;
};

static const struct rate_state empty_state = {0, 0, 0, -1, 0, 0, 0};

static void note_now(struct rate_mem *m, long long now_ms)
{
	long long seen = atomic_load(&m->now_seen);

	while (now_ms > seen && !atomic_compare_exchange_weak(&m->now_seen, &seen, now_ms))
		;
}

/* decide - every item on its state; fills v */
static void decide(struct work *w, const struct rate_item *items, size_t n, long long now,
                   struct rate_verdict *v)
{
	long long remaining_min = -1;
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		struct rate_outcome o;

		rate_state_charge(&w[w[i].first].st, &items[i], now, &o);
		if (!o.ok) {
			int rank = strictness(items[i].action);
			v->allowed = false;
			if (rank > best) {
				best = rank;
				v->denied = i;
				v->retry_after_ms = o.retry_after_ms;
				v->resets_at_ms = o.resets_at_ms;
				v->quota = o.quota;
				v->remaining = o.remaining;
			}
		} else if (remaining_min < 0 || o.remaining < remaining_min) {
			remaining_min = o.remaining;
		}
	}
	if (v->allowed)
		v->remaining = remaining_min < 0 ? 0 : remaining_min;
}

int rate_mem_charge(struct rate_mem *m, const struct rate_item *items, size_t n, bool force,
                    long long now_ms, struct rate_verdict *v)
{
	struct work local[LOCAL_ITEMS], *w = n <= LOCAL_ITEMS ? local : xcalloc(n, sizeof(*w));
	uint64_t shards = 0;

	memset(v, 0, sizeof(*v));
	v->allowed = true;
	if (n == 0 || m->admin) {
		if (w != local)
			free(w);
		return n == 0 ? 0 : -1;
	}
	note_now(m, now_ms);
	for (size_t i = 0; i < n; i++) {
		w[i].hash = siphash(items[i].state_key, m->k0, m->k1);
		w[i].first = i;
		for (size_t j = 0; j < i; j++)
			if (w[j].hash == w[i].hash &&
			    strcmp(items[j].state_key, items[i].state_key) == 0) {
				w[i].first = j;
				break;
			}
		shards |= (uint64_t)1 << shard_of(w[i].hash);
	}
	for (size_t s = 0; s < NSHARDS; s++)
		if (shards & ((uint64_t)1 << s))
			pthread_mutex_lock(&m->shards[s].lock);
	for (size_t i = 0; i < n; i++) {
		if (w[i].first != i)
			continue;
		w[i].e = lookup(&m->shards[shard_of(w[i].hash)], w[i].hash, items[i].state_key);
		w[i].st = w[i].e ? w[i].e->st : empty_state;
	}
	decide(w, items, n, now_ms, v);
	for (size_t i = 0; (v->allowed || force) && i < n; i++) {
		if (w[i].first != i)
			continue;
		if (w[i].e == NULL)
			w[i].e = insert(&m->shards[shard_of(w[i].hash)], w[i].hash,
			                items[i].state_key, &w[i].st);
		w[i].e->st = w[i].st;
		w[i].e->dirty = true;
	}
	for (size_t s = NSHARDS; s-- > 0;)
		if (shards & ((uint64_t)1 << s))
			pthread_mutex_unlock(&m->shards[s].lock);
	if (w != local)
		free(w);
	return 0;
}

size_t rate_mem_count(struct rate_mem *m)
{
	size_t n = 0;

	for (size_t s = 0; s < NSHARDS; s++) {
		pthread_mutex_lock(&m->shards[s].lock);
		n += m->shards[s].count;
		pthread_mutex_unlock(&m->shards[s].lock);
	}
	return n;
}

/* flushing */

struct batch {
	struct rate_row *rows;
	size_t nrows, rows_size;
	char **gone;
	size_t ngone, gone_size;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->nrows; i++)
		free(b->rows[i].key);
	for (size_t i = 0; i < b->ngone; i++)
		free(b->gone[i]);
	free(b->rows);
	free(b->gone);
}

static void push_gone(struct batch *b, const char *key)
{
	if (b->ngone == b->gone_size) {
		b->gone_size = b->gone_size ? 2 * b->gone_size : 256;
		b->gone = xrealloc(b->gone, b->gone_size * sizeof(*b->gone));
	}
	b->gone[b->ngone++] = xstrdup(key);
}

static void push_row(struct batch *b, const char *key, const struct rate_state *st)
{
	if (b->nrows == b->rows_size) {
		b->rows_size = b->rows_size ? 2 * b->rows_size : 256;
		b->rows = xrealloc(b->rows, b->rows_size * sizeof(*b->rows));
	}
	b->rows[b->nrows].key = xstrdup(key);
	b->rows[b->nrows++].st = *st;
}

/* collect_chain - one hash chain: the idle entries out (into gone when
 * the file has them), the dirty ones into rows (when there is a file) */
static void collect_chain(struct shard *sh, struct entry **pp, bool with_db, long long now,
                          struct batch *b)
{
	while (*pp != NULL) {
		struct entry *e = *pp;

		if (now > 0 && rate_state_idle(&e->st, now)) {
			if (with_db && e->persisted)
				push_gone(b, e->key);
			unlink_entry(sh, pp);
			continue;
		}
		if (with_db && e->dirty) {
			push_row(b, e->key, &e->st);
			e->dirty = false;
			e->persisted = true;
		}
		pp = &e->next;
	}
}

/* collect - every shard, one at a time (decisions wait for one shard's
 * walk at most) */
static void collect(struct rate_mem *m, bool with_db, long long now, struct batch *b)
{
	for (size_t s = 0; s < NSHARDS; s++) {
		struct shard *sh = &m->shards[s];

		pthread_mutex_lock(&sh->lock);
		for (size_t i = 0; i < sh->nbuckets; i++)
			collect_chain(sh, &sh->buckets[i], with_db, now, b);
		pthread_mutex_unlock(&sh->lock);
	}
}

/* mark_dirty - rows not written after all */
static void mark_dirty(struct rate_mem *m, const struct batch *b)
{
	for (size_t i = 0; i < b->nrows; i++) {
		uint64_t hash = siphash(b->rows[i].key, m->k0, m->k1);
		struct shard *sh = &m->shards[shard_of(hash)];
		struct entry *e;

		pthread_mutex_lock(&sh->lock);
		if ((e = lookup(sh, hash, b->rows[i].key)) != NULL)
			e->dirty = true;
		pthread_mutex_unlock(&sh->lock);
	}
}

static void take_reset(void *ctx, const char *key)
{
	struct rate_mem *m = ctx;

	if (forget(m, key))
		log_info("rate: counters of %s reset (weirctl rate reset)", key);
}

/* db_result - log a failing file once per outage, and its recovery */
static int db_result(struct rate_mem *m, int rc, char *err)
{
	if (rc < 0 && !m->db_failing)
		log_warning("rate: cannot write counters (kept in memory, tried again at each "
		            "flush): %s",
		            err ? err : "?");
	else if (rc == 0 && m->db_failing)
		log_info("rate: counters written to %s again", m->db_path);
	m->db_failing = rc < 0;
	free(err);
	return rc;
}

/* flush - resets, then writes and drops; under db_lock */
static int flush(struct rate_mem *m)
{
	long long now = atomic_load(&m->now_seen);
	struct batch b = {0};
	char *err = NULL;
	int rc = 0;

	pthread_mutex_lock(&m->db_lock);
	if (m->db != NULL && rate_db_take_resets(m->db, take_reset, m, &err) < 0)
		rc = db_result(m, -1, err);
	collect(m, m->db != NULL, now, &b);
	if (m->db != NULL && rc == 0) {
		err = NULL;
		rc = db_result(m, rate_db_write(m->db, b.rows, b.nrows, b.gone, b.ngone, now, &err),
		               err);
	}
	if (rc < 0)
		mark_dirty(m, &b);
	pthread_mutex_unlock(&m->db_lock);
	batch_free(&b);
	return rc;
}

int rate_mem_flush(struct rate_mem *m)
{
	return m->admin ? 0 : flush(m);
}

static void *flush_main(void *arg)
{
	struct rate_mem *m = arg;
	struct timespec at;

	pthread_mutex_lock(&m->ctl_lock);
	while (!m->stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += atomic_load(&m->flush_interval);
		while (!m->stop && pthread_cond_timedwait(&m->wake, &m->ctl_lock, &at) == 0)
			;
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->ctl_lock);
		flush(m);
		pthread_mutex_lock(&m->ctl_lock);
	}
	pthread_mutex_unlock(&m->ctl_lock);
	return NULL;
}

/* start_thread - the flush thread, with every signal blocked (signals
 * are the daemon's main thread's business) */
static int start_thread(struct rate_mem *m, char **err_r)
{
	sigset_t all, old;
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&m->thread, NULL, flush_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		*err_r = xasprintf("rate: cannot start the flush thread: %s", strerror(rc));
		return -1;
	}
	m->thread_started = true;
	return 0;
}

/* open and close */

static void load_row(void *ctx, const char *key, const struct rate_state *st)
{
	struct rate_mem *m = ctx;
	uint64_t hash = siphash(key, m->k0, m->k1);
	struct shard *sh = &m->shards[shard_of(hash)];
	struct entry *e;

	pthread_mutex_lock(&sh->lock);
	if ((e = lookup(sh, hash, key)) == NULL)
		e = insert(sh, hash, key, st);
	e->persisted = true;
	pthread_mutex_unlock(&sh->lock);
}

static void ignore_reset(void *ctx, const char *key)
{
	(void)ctx;
	(void)key;
}

/* load - the file's counters into memory; resets asked for while
 * weir-milter was down are taken first */
static int load(struct rate_mem *m, char **err_r)
{
	m->db = rate_db_open(m->db_path, true, err_r);
	if (m->db == NULL)
		return -1;
	if (rate_db_take_resets(m->db, ignore_reset, NULL, err_r) < 0 ||
	    rate_db_load(m->db, load_row, m, err_r) < 0)
		return -1;
	return 0;
}

struct rate_mem *rate_mem_open(const struct weir_config *cfg, bool admin, char **err_r)
{
	struct rate_mem *m = xcalloc(1, sizeof(*m));
	uint64_t key[2];

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		key[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		key[1] = (uint64_t)(uintptr_t)m;
	}
	m->k0 = key[0];
	m->k1 = key[1];
	m->admin = admin;
	for (size_t s = 0; s < NSHARDS; s++) {
		pthread_mutex_init(&m->shards[s].lock, NULL);
		m->shards[s].nbuckets = SHARD_BUCKETS;
		m->shards[s].buckets = xcalloc(SHARD_BUCKETS, sizeof(struct entry *));
	}
	pthread_mutex_init(&m->db_lock, NULL);
	pthread_mutex_init(&m->ctl_lock, NULL);
	atomic_init(&m->now_seen, 0);
	atomic_init(&m->flush_interval,
	            cfg->rate.flush_interval > 0 ? cfg->rate.flush_interval : 2);
	m->db_path = xstrdup(cfg->rate.state_db ? cfg->rate.state_db : "");
	if (!admin &&
	    ((m->db_path[0] != '\0' && load(m, err_r) < 0) || start_thread(m, err_r) < 0)) {
		rate_mem_close(m);
		return NULL;
	}
	return m;
}

/* mark_all_dirty - a new file: everything is to be written to it */
static void mark_all_dirty(struct rate_mem *m)
{
	for (size_t s = 0; s < NSHARDS; s++) {
		struct shard *sh = &m->shards[s];

		pthread_mutex_lock(&sh->lock);
		for (size_t i = 0; i < sh->nbuckets; i++)
			for (struct entry *e = sh->buckets[i]; e; e = e->next) {
				e->dirty = true;
				e->persisted = false;
			}
		pthread_mutex_unlock(&sh->lock);
	}
}

void rate_mem_reconfigure(struct rate_mem *m, const struct weir_config *cfg)
{
	const char *path = cfg->rate.state_db ? cfg->rate.state_db : "";
	struct rate_db *db = NULL;
	char *err = NULL;

	atomic_store(&m->flush_interval,
	             cfg->rate.flush_interval > 0 ? cfg->rate.flush_interval : 2);
	if (m->admin || strcmp(path, m->db_path) == 0)
		return;
	if (path[0] != '\0' && (db = rate_db_open(path, true, &err)) == NULL) {
		log_error("rate: %s; counters stay in %s", err,
		          m->db_path[0] ? m->db_path : "memory only");
		free(err);
		return;
	}
	pthread_mutex_lock(&m->db_lock);
	rate_db_close(m->db);
	m->db = db;
	free(m->db_path);
	m->db_path = xstrdup(path);
	m->db_failing = false;
	mark_all_dirty(m);
	pthread_mutex_unlock(&m->db_lock);
	log_info("rate: counters now kept in %s", path[0] ? path : "memory only");
}

void rate_mem_close(struct rate_mem *m)
{
	if (m == NULL)
		return;
	if (m->thread_started) {
		pthread_mutex_lock(&m->ctl_lock);
		m->stop = true;
		pthread_cond_signal(&m->wake);
		pthread_mutex_unlock(&m->ctl_lock);
		pthread_join(m->thread, NULL);
		pthread_cond_destroy(&m->wake);
		flush(m);
	}
	rate_db_close(m->db);
	for (size_t s = 0; s < NSHARDS; s++) {
		struct shard *sh = &m->shards[s];
		for (size_t i = 0; i < sh->nbuckets; i++)
			while (sh->buckets[i])
				unlink_entry(sh, &sh->buckets[i]);
		free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	pthread_mutex_destroy(&m->db_lock);
	pthread_mutex_destroy(&m->ctl_lock);
	free(m->db_path);
	free(m);
}

/* show and reset */

static int cmp_rows(const void *a, const void *b)
{
	return strcmp(((const struct rate_row *)a)->key, ((const struct rate_row *)b)->key);
}

/* show_memory - the counters as they are now in this process */
static int show_memory(struct rate_mem *m, const char *state_key, FILE *out)
{
	long long now = atomic_load(&m->now_seen);
	struct rate_row *rows = NULL;
	size_t n = 0, size = 0;

	if (now == 0)
		now = rate_now_ms();
	for (size_t s = 0; s < NSHARDS; s++) {
		struct shard *sh = &m->shards[s];
		pthread_mutex_lock(&sh->lock);
		for (size_t i = 0; i < sh->nbuckets; i++)
			for (struct entry *e = sh->buckets[i]; e; e = e->next) {
				if (state_key != NULL && strcmp(state_key, e->key) != 0)
					continue;
				if (n == size) {
					size = size ? 2 * size : 64;
					rows = xrealloc(rows, size * sizeof(*rows));
				}
				rows[n].key = xstrdup(e->key);
				rows[n++].st = e->st;
			}
		pthread_mutex_unlock(&sh->lock);
	}
	if (n > 0)
		qsort(rows, n, sizeof(*rows), cmp_rows);
	for (size_t i = 0; i < n; i++) {
		char *line = rate_state_format(rows[i].key, &rows[i].st, now);
		fprintf(out, "%s\n", line);
		free(line);
		free(rows[i].key);
	}
	if (n == 0 && state_key != NULL)
		fprintf(out, "%s state=none\n", state_key);
	free(rows);
	return 0;
}

int rate_mem_show(struct rate_mem *m, const char *state_key, FILE *out, char **err_r)
{
	struct rate_db *db;
	int rc;

	if (!m->admin)
		return show_memory(m, state_key, out);
	if (m->db_path[0] == '\0') {
		*err_r = xstrdup("rate.state_db is \"\": the counters live only in weir-milter's "
		                 "memory");
		return -1;
	}
	if ((db = rate_db_open(m->db_path, false, err_r)) == NULL)
		return -1;
	fprintf(out, "# memory backend: counters as of weir-milter's last flush (every %lds)\n",
	        atomic_load(&m->flush_interval));
	rc = rate_db_show(db, state_key, rate_now_ms(), out, err_r);
	rate_db_close(db);
	return rc;
}

int rate_mem_reset(struct rate_mem *m, const char *state_key, char **err_r)
{
	struct rate_db *db;
	int rc = 0;

	if (!m->admin) {
		forget(m, state_key);
		pthread_mutex_lock(&m->db_lock);
		if (m->db != NULL)
			rc = rate_db_delete(m->db, state_key, err_r);
		pthread_mutex_unlock(&m->db_lock);
		return rc;
	}
	if (m->db_path[0] == '\0') {
		*err_r = xstrdup("rate.state_db is \"\": weirctl cannot reach the counters in "
		                 "weir-milter's memory (a restart clears them)");
		return -1;
	}
	if ((db = rate_db_open(m->db_path, false, err_r)) == NULL)
		return -1;
	rc = rate_db_request_reset(db, state_key, rate_now_ms(), err_r);
	rate_db_close(db);
	return rc;
}
