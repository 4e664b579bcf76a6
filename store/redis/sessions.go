package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// keys of one owner: the sessions and the index share a hash tag, so a
// script touches one slot. The owner is hashed: apps, issuers and subjects
// are arbitrary strings.
func (s *Store) ownerKeys(owner store.Owner) (sessionPrefix, index string) {
	// Length-prefixed parts: no app, issuer and subject spell another's.
	parts, _ := owner.AppendBinary(make([]byte, 0, 64))
	sum := sha256.Sum256(parts)
	tag := "{" + hex.EncodeToString(sum[:16]) + "}"
	return s.KeyPrefix + tag + ":s:", s.KeyPrefix + tag + ":i"
}

func (s *Store) allKey() string { return s.KeyPrefix + "all" }

func ms(t time.Time) int64 { return t.UnixMilli() }

// expiresMS is an absolute end as the scripts keep it: ms, 0 for none.
func expiresMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// The scripts. A session is a hash {created, last, timeout (s), payload,
// rev, exp} whose key expires at its end: the earlier of last+timeout and
// exp, its absolute end (ms; 0 for none). An owner's index is a sorted set
// of ids scored by their end, trimmed of ended ids on every write and
// expiring with the last of them. ARGV[1] is always now (ms).

// Every script starts with a shebang (Redis 7): a script without the
// allow-oom flag is refused as a whole when Redis is at maxmemory (OOM,
// answered store-full, nothing written), instead of running until a write
// fails halfway. Deletes declare allow-oom: they free memory.

// createScript: KEYS session, index, idempotency record[, all when there
// is a global cap]. ARGV now, id, created, timeout, payload, maxPerOwner,
// maxLive, allMember, exp, tag, fingerprint ("" without an
// Idempotency-Key), its TTL (ms), repair ("1" with allow_eviction), the
// owner's session key prefix. It answers {'ok'}, {'replay', the first
// session's fields}, {'mismatch'}, {'too_many'}, {'full'} or
// {'collision'}.
var createScript = goredis.NewScript(`#!lua
local now = tonumber(ARGV[1])
local idem = ARGV[11] ~= ''
if idem then
	local r = redis.call('HMGET', KEYS[3], 'fp', 'id', 'created', 'last', 'timeout', 'payload', 'rev', 'exp', 'tag')
	if r[1] then
		if r[1] ~= ARGV[11] then return {'mismatch'} end
		return {'replay', r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]}
	end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if ARGV[13] == '1' then
	-- Keys may have been evicted: count only the sessions still there.
	for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
		if redis.call('EXISTS', ARGV[14] .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
	end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {'too_many'} end
local maxLive = tonumber(ARGV[7])
if maxLive > 0 then
	redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
	if redis.call('ZCARD', KEYS[4]) >= maxLive then return {'full'} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision'} end
local expires = now + tonumber(ARGV[4]) * 1000
local exp = tonumber(ARGV[9])
if exp > 0 and exp < expires then expires = exp end
redis.call('HSET', KEYS[1], 'created', ARGV[3], 'last', ARGV[1], 'timeout', ARGV[4], 'payload', ARGV[5], 'rev', 1, 'exp', ARGV[9], 'tag', ARGV[10])
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], expires, ARGV[2])
if redis.call('PTTL', KEYS[2]) < expires - now then redis.call('PEXPIREAT', KEYS[2], expires) end
if maxLive > 0 then
	redis.call('ZADD', KEYS[4], expires, ARGV[8])
	if redis.call('PTTL', KEYS[4]) < expires - now then redis.call('PEXPIREAT', KEYS[4], expires) end
end
if idem then
	redis.call('HSET', KEYS[3], 'fp', ARGV[11], 'id', ARGV[2], 'created', ARGV[3], 'last', ARGV[1], 'timeout', ARGV[4], 'payload', ARGV[5], 'rev', 1, 'exp', ARGV[9], 'tag', ARGV[10])
	redis.call('PEXPIRE', KEYS[3], ARGV[12])
end
return {'ok'}
`)

// updateScript and deleteScript: one session. KEYS session, index[, all].
// ARGV now, id, mode ("update" | "delete"), payload or "" , hasPayload,
// ifMatchAny, allMember, the new tag, then the If-Match tags (none:
// unconditional). A session's ETag is its tag, or for one stored by an
// earlier version without a tag, its revision.
var (
	updateScript = goredis.NewScript("#!lua\n" + writeBody)
	deleteScript = goredis.NewScript("#!lua flags=allow-oom\n" + writeBody)
)

const writeBody = `
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'last', 'timeout', 'rev', 'exp', 'tag')
if not f[1] then return {'not_found'} end
local exp = tonumber(f[4] or '0')
local function ending(last)
	local e = last + tonumber(f[2]) * 1000
	if exp > 0 and exp < e then return exp end
	return e
end
if ending(tonumber(f[1])) <= now then return {'not_found'} end
local etag = '"' .. (f[5] or f[3]) .. '"'
local conditional = ARGV[6] == '1' or #ARGV > 8
if conditional and ARGV[6] ~= '1' then
	local matched = false
	for i = 9, #ARGV do if ARGV[i] == etag then matched = true end end
	if not matched then return {'precondition'} end
end
if ARGV[3] == 'delete' then
	redis.call('DEL', KEYS[1])
	redis.call('ZREM', KEYS[2], ARGV[2])
	if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[7]) end
	return {'ok'}
end
local expires = ending(now)
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'payload', ARGV[4]) end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1], 'tag', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], expires, ARGV[2])
if redis.call('PTTL', KEYS[2]) < expires - now then redis.call('PEXPIREAT', KEYS[2], expires) end
if KEYS[3] then
	redis.call('ZADD', KEYS[3], expires, ARGV[7])
	if redis.call('PTTL', KEYS[3]) < expires - now then redis.call('PEXPIREAT', KEYS[3], expires) end
end
return {'ok', redis.call('HGET', KEYS[1], 'created'), tostring(rev), f[2], redis.call('HGET', KEYS[1], 'payload'), tostring(exp), ARGV[8]}
`

// listScript: an owner's live sessions. KEYS index. ARGV now, the owner's
// session key prefix. It answers, for each id the index holds as live, the
// id and the session's fields (sessionFields; nil for a session whose key
// is gone).
var listScript = goredis.NewScript(`#!lua flags=no-writes
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE')) do
	out[#out + 1] = id
	local f = redis.call('HMGET', ARGV[2] .. id, 'created', 'last', 'timeout', 'payload', 'rev', 'exp', 'tag')
	for i = 1, 7 do out[#out + 1] = f[i] end
end
return out
`)

// deleteAllScript: every session of one owner but one. KEYS index[, all].
// ARGV now, the owner's session key prefix, the id kept ("" for none).
// It returns how many live sessions it removed.
var deleteAllScript = goredis.NewScript(`#!lua flags=allow-oom
local now = tonumber(ARGV[1])
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
	if id ~= ARGV[3] then
		local key = ARGV[2] .. id
		local f = redis.call('HMGET', key, 'last', 'timeout', 'exp')
		if f[1] then
			local e = tonumber(f[1]) + tonumber(f[2]) * 1000
			local exp = tonumber(f[3] or '0')
			if exp > 0 and exp < e then e = exp end
			if e > now then n = n + 1 end
		end
		redis.call('DEL', key)
		redis.call('ZREM', KEYS[1], id)
		if KEYS[2] then redis.call('ZREM', KEYS[2], key) end
	end
end
return n
`)

// keys returns the KEYS of a script: those given, and the global cap's
// set when there is one (never an empty name: Redis Cluster would route
// it to slot 0).
func (s *Store) keys(k ...string) []string {
	if s.MaxLiveSessions > 0 {
		k = append(k, s.allKey())
	}
	return k
}

// idemKey is the record of an Idempotency-Key, in the owner's slot. The
// client's key is hashed: any bytes, fixed length.
func idemKey(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix[:len(prefix)-len("s:")] + "k:" + hex.EncodeToString(sum[:16])
}

// Create implements store.Store; past max_live_sessions it answers a
// store.StoreFullError that says to retry after a minute.
func (s *Store) Create(ctx context.Context, owner store.Owner, sess store.Session, maxPerOwner int, idem *store.Idempotency, now time.Time) (store.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	prefix, index := s.ownerKeys(owner)
	payload := sess.Payload
	if payload == nil {
		payload = []byte(`{}`)
	}
	tag := store.NewTag()
	record, fingerprint, ttl := idemKey(prefix, ""), "", int64(0)
	if idem != nil {
		record, fingerprint, ttl = idemKey(prefix, idem.Key), idem.Fingerprint, max(1, idem.TTL.Milliseconds())
	}
	repair := "0"
	if s.AllowEviction {
		repair = "1"
	}
	res, err := s.runWrite(ctx, createScript, s.keys(prefix+sess.ID, index, record),
		ms(now), sess.ID, ms(sess.Created), int64(sess.Timeout/time.Second), []byte(payload),
		maxPerOwner, s.MaxLiveSessions, prefix+sess.ID, expiresMS(sess.Expires), tag,
		fingerprint, ttl, repair, prefix).Slice()
	if err != nil {
		return store.Session{}, failure(err)
	}
	switch res[0] {
	case "ok":
		sess.Revision, sess.Tag = 1, tag
		sess.Payload = payload
		return sess, nil
	case "replay":
		first, ok := readSession(fmt.Sprint(res[1]), res[2:], time.Time{})
		if !ok {
			return store.Session{}, fmt.Errorf("redis: an idempotency record cannot be read")
		}
		return first, nil
	case "mismatch":
		return store.Session{}, store.ErrIdempotencyMismatch
	case "too_many":
		return store.Session{}, store.ErrTooManySessions
	case "full":
		return store.Session{}, store.StoreFullError{RetryAfter: time.Minute}
	}
	return store.Session{}, fmt.Errorf("redis: create answered %v", res[0])
}

// read turns a session hash into a Session, or reports it missing or expired.
func readSession(id string, f []any, now time.Time) (store.Session, bool) {
	if len(f) != len(sessionFields) || f[0] == nil {
		return store.Session{}, false
	}
	num := func(v any) int64 {
		str, _ := v.(string)
		n, _ := strconv.ParseInt(str, 10, 64)
		return n
	}
	payload, _ := f[3].(string)
	sess := store.Session{
		ID:         id,
		Created:    time.UnixMilli(num(f[0])).UTC(),
		LastActive: time.UnixMilli(num(f[1])).UTC(),
		Timeout:    time.Duration(num(f[2])) * time.Second,
		Payload:    []byte(payload),
		Revision:   uint64(num(f[4])),
	}
	if exp := num(f[5]); exp > 0 { // absent in sessions of earlier versions
		sess.Expires = time.UnixMilli(exp).UTC()
	}
	sess.Tag, _ = f[6].(string) // likewise
	if sess.Expired(now) {
		return store.Session{}, false
	}
	return sess, true
}

var sessionFields = []string{"created", "last", "timeout", "payload", "rev", "exp", "tag"}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, owner store.Owner, id string, now time.Time) (store.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	prefix, _ := s.ownerKeys(owner)
	f, err := s.client.HMGet(ctx, prefix+id, sessionFields...).Result()
	if err != nil {
		return store.Session{}, failure(err)
	}
	sess, ok := readSession(id, f, now)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, owner store.Owner, now time.Time) ([]store.Session, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	prefix, index := s.ownerKeys(owner)
	// One round trip, read-only (EVALSHA_RO: replicas may answer it with
	// replica_reads).
	flat, err := listScript.RunRO(ctx, s.client, []string{index}, ms(now), prefix).Slice()
	if err != nil {
		return nil, failure(err)
	}
	per := 1 + len(sessionFields)
	out := make([]store.Session, 0, len(flat)/per)
	var evicted []any
	for i := 0; i+per <= len(flat); i += per {
		id, _ := flat[i].(string)
		f := flat[i+1 : i+per]
		if sess, ok := readSession(id, f, now); ok {
			out = append(out, sess)
		} else if f[0] == nil {
			evicted = append(evicted, id)
		}
	}
	if s.AllowEviction && len(evicted) > 0 {
		// Their keys were evicted (or expired a moment ago): drop them
		// from the index. A repair only; the answer stands without it.
		s.client.ZRem(ctx, index, evicted...)
	}
	store.Sort(out)
	return out, nil
}

// write runs writeScript: an update or a delete of one session.
func (s *Store) write(ctx context.Context, owner store.Owner, id, mode string, payload []byte, cond *store.IfMatch, now time.Time) ([]any, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	prefix, index := s.ownerKeys(owner)
	hasPayload, anyTag := "0", "0"
	if payload != nil {
		hasPayload = "1"
	}
	args := []any{ms(now), id, mode, []byte(payload), hasPayload, anyTag, prefix + id, store.NewTag()}
	if cond != nil {
		if cond.Any {
			args[5] = "1"
		}
		for _, t := range cond.Tags {
			args = append(args, t)
		}
		if !cond.Any && len(cond.Tags) == 0 {
			args = append(args, "") // an If-Match that names nothing matches nothing
		}
	}
	script := updateScript
	if mode == "delete" {
		script = deleteScript
	}
	res, err := s.runWrite(ctx, script, s.keys(prefix+id, index), args...).Slice()
	if err != nil {
		return nil, failure(err)
	}
	switch res[0] {
	case "ok":
		return res, nil
	case "not_found":
		return nil, store.ErrNotFound
	case "precondition":
		return nil, store.ErrPreconditionFailed
	}
	return nil, fmt.Errorf("redis: write answered %v", res[0])
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, owner store.Owner, id string, payload json.RawMessage, cond *store.IfMatch, now time.Time) (store.Session, error) {
	res, err := s.write(ctx, owner, id, "update", payload, cond, now)
	if err != nil {
		return store.Session{}, err
	}
	sess, ok := readSession(id, []any{res[1], strconv.FormatInt(ms(now), 10), res[3], res[4], res[2], res[5], res[6]}, now)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

// DeleteAll implements store.Store, in one script.
func (s *Store) DeleteAll(ctx context.Context, owner store.Owner, except string, now time.Time) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	prefix, index := s.ownerKeys(owner)
	n, err := s.runWrite(ctx, deleteAllScript, s.keys(index), ms(now), prefix, except).Int()
	if err != nil {
		return 0, failure(err)
	}
	return n, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, owner store.Owner, id string, cond *store.IfMatch, now time.Time) error {
	_, err := s.write(ctx, owner, id, "delete", nil, cond, now)
	return err
}
