package leveeredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// breakerKeys are the Redis keys of one fleet breaker, all under the hash
// tag {prefix:breaker:name}, so that in a Redis Cluster one slot holds them
// and one script touches them all.
type breakerKeys struct {
	members string // sorted set: instance id -> last heartbeat (server ms)
	tripped string // sorted set: instance id -> last report of a trip (server ms)
	state   string // hash: the fleet's state (fields below)
	lease   string // string: the probe holder's id, with the lease's expiry
	channel string // pub/sub channel of the Fleet's breakers; payload: the name
	all     []string
}

func newBreakerKeys(f *Fleet, name string) breakerKeys {
	ks := f.keyspace("breaker", name)
	k := breakerKeys{
		members: ks.key("members"), tripped: ks.key("tripped"),
		state: ks.key("state"), lease: ks.key("lease"),
		channel: f.breakerChannel(),
	}
	k.all = []string{k.members, k.tripped, k.state, k.lease}
	return k
}

// The fleet's states in the state hash's "state" field; stateNone is an
// absent hash (a fleet that has made no change, or a Redis that lost it).
const (
	stateNone   = "none"
	stateClosed = "closed"
	stateOpen   = "open"
	stateForced = "forced"
)

// fleetView is one sync's answer: the fleet's state, read in the script that
// sent this instance's report.
type fleetView struct {
	state   string
	epoch   int64  // the last change, server ms (grows with each change)
	until   int64  // state open: when the open period ends, server ms
	now     int64  // the server's time when the script ran, ms
	holder  string // the probe lease's holder, "" for none
	live    int64
	tripped int64
	cause   string // what made the last change: quorum, probe, operator
	at      time.Time
}

// luaStateRead reads the state hash of KEYS[3] into state, epoch, untilMs,
// closedEpoch and cause, refusing with a LEVEE_BAD_DATA error anything the
// scripts could not have written (times included: more than an hour ahead
// of the server's clock). It needs luaNow before it, and ARGV[7], the open
// timeout in ms.
const luaStateRead = `
local function bad(field, v)
  return redis.error_reply('LEVEE_BAD_DATA ' .. KEYS[3] .. ': field ' .. field .. ' holds ' .. string.format('%q', tostring(v)))
end
local raw = redis.call('HMGET', KEYS[3], 'state', 'epoch', 'until', 'closed_epoch', 'cause', 'prober')
local state = raw[1]
if not state then
  state = 'none'
elseif state ~= 'closed' and state ~= 'open' and state ~= 'forced' then
  return bad('state', state)
end
local nums = {}
for i, f in ipairs({'epoch', 'until', 'closed_epoch'}) do
  local v = raw[i + 1]
  local n = 0
  if v then
    n = tonumber(v)
    if not n or n < 0 or n ~= math.floor(n) then return bad(f, v) end
  end
  nums[i] = n
end
local epoch, untilMs, closedEpoch = nums[1], nums[2], nums[3]
-- Times no script could have written: the scripts write the server's now
-- (an open period's end: now + the open timeout). An hour of slack rides
-- out the server's clock stepping back. Taken as they are, a far end would
-- hold every instance open for ages, and a far close would make every trip
-- predate it, so that no quorum could open the fleet.
local ahead = now + 3600000
if epoch > ahead then return bad('epoch', raw[2]) end
if closedEpoch > ahead then return bad('closed_epoch', raw[4]) end
if untilMs > ahead + tonumber(ARGV[7]) then return bad('until', raw[3]) end
local cause = raw[5] or ''
local lastProber = raw[6] or ''
`

// syncScript is one instance's whole exchange with the fleet, in one round
// trip: its heartbeat, its report, the probe's result if it holds the lease,
// the quorum rule, the lease, and the fleet's state in answer.
//
// KEYS: members, tripped, state, lease. ARGV: 1 id, 2 member TTL ms,
// 3 tripped (0/1), 4 the epoch this instance last applied, 5 quorum,
// 6 quorum share, 7 open timeout ms, 8 lease ms, 9 probe result (”,
// 'closed', 'open'), 10 channel, 11 name, 12 state TTL ms.
var syncScript = redis.NewScript(luaNow + luaPrune + luaHeartbeat + luaStateRead + `
local id, ttl = ARGV[1], tonumber(ARGV[2])
local live = heartbeat(KEYS[1], id, ttl)
local holder = redis.call('GET', KEYS[4])
local changed, announce = false, false
local function bump()
  epoch = math.max(now, epoch + 1)
  changed, announce = true, true
end
local openMs = tonumber(ARGV[7])
-- The probe's result, from the lease's holder only.
if state == 'open' and holder == id and ARGV[9] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[3], 'prober')
  holder = false
  bump()
  cause = 'probe'
  if ARGV[9] == 'closed' then
    state = 'closed'
    closedEpoch = epoch
    redis.call('DEL', KEYS[2])
  else
    untilMs = now + openMs
  end
end
-- The report: a trip counts unless it predates the fleet's last close.
if ARGV[3] == '1' and tonumber(ARGV[4]) >= closedEpoch then
  redis.call('ZADD', KEYS[2], now, id)
else
  redis.call('ZREM', KEYS[2], id)
end
prune(KEYS[2], ttl)
local tripped = redis.call('ZCARD', KEYS[2])
-- Quorum.
if state == 'closed' or state == 'none' then
  local need = math.max(tonumber(ARGV[5]), math.ceil(tonumber(ARGV[6]) * live))
  if tripped >= need then
    state = 'open'
    bump()
    untilMs = now + openMs
    cause = 'quorum'
  end
end
if changed then
  redis.call('HSET', KEYS[3], 'state', state, 'epoch', epoch, 'until', untilMs, 'closed_epoch', closedEpoch, 'cause', cause)
end
-- One probe per fleet: the first instance to sync after the open period,
-- but not the one whose lease just expired unused (an instance with no
-- traffic), unless it is alone.
if state == 'open' and now >= untilMs and not holder and (id ~= lastProber or live == 1) then
  redis.call('SET', KEYS[4], id, 'PX', ARGV[8])
  redis.call('HSET', KEYS[3], 'prober', id)
  holder = id
  announce = true
end
redis.call('PEXPIRE', KEYS[3], ARGV[12])
if announce then redis.call('PUBLISH', ARGV[10], ARGV[11]) end
return {state, epoch, untilMs, now, holder or '', live, tripped, cause}
`)

// operatorScript sets the fleet's state by an operator's word, whatever
// the keys held (it repairs bad data): forced open, or closed.
//
// KEYS: members, tripped, state, lease. ARGV: 1 state ('forced',
// 'closed'), 2 channel, 3 name, 4 state TTL ms.
var operatorScript = redis.NewScript(luaNow + `
local old = 0
if redis.call('TYPE', KEYS[3]).ok == 'hash' then
  old = tonumber(redis.call('HGET', KEYS[3], 'epoch')) or 0
end
if old > now + 3600000 then old = 0 end -- bad data (see luaStateRead): repaired
local epoch = math.max(now, old + 1)
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[3], 'state', ARGV[1], 'epoch', epoch, 'until', 0, 'closed_epoch', epoch, 'cause', 'operator')
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return epoch
`)

// DataError reports a fleet policy's Redis keys holding data its scripts
// could not have written (a key of the wrong type, a field that does not
// parse: another program's data, a hand edit, a bad restore): the policy
// goes on with its local state and counts the error in
// levee.fleet.sync.errors (error.type "fleet_bad_data"). The fleet
// breaker also reports it to otel.Handle, and an operator's Reset rewrites
// its keys; the fleet limiter's and budget's scripts delete the bad key, so
// that the next exchange starts their state afresh. Every fleet policy
// reports bad data with this one type.
type DataError struct {
	// Policy is the fleet policy's name.
	Policy string
	// Detail is what Redis or the parser said.
	Detail string
}

// Error says which policy's keys hold bad data, and what.
func (e *DataError) Error() string {
	return "leveeredis: fleet policy " + strconv.Quote(e.Policy) + ": bad data in Redis: " + e.Detail
}

// ErrorType names the error for telemetry: ErrorTypeBadData.
func (e *DataError) ErrorType() string { return ErrorTypeBadData }

// ErrorTypeBadData is the error.type of a DataError, in
// levee.fleet.sync.errors.
const ErrorTypeBadData = "fleet_bad_data"

// scriptError turns a script's bad-data refusals (its own, and Redis's
// WRONGTYPE) into a *DataError.
func (b *Breaker) scriptError(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		if i := strings.Index(msg, "LEVEE_BAD_DATA "); i >= 0 {
			return &DataError{Policy: b.name, Detail: msg[i+len("LEVEE_BAD_DATA "):]}
		}
		if strings.Contains(msg, "WRONGTYPE") {
			return &DataError{Policy: b.name, Detail: msg}
		}
	}
	return err
}

// parseView reads syncScript's answer.
func (b *Breaker) parseView(res []any) (*fleetView, error) {
	if len(res) != 8 {
		return nil, &DataError{Policy: b.name, Detail: fmt.Sprintf("the sync script answered %d values, want 8", len(res))}
	}
	str := func(i int) (string, bool) { s, ok := res[i].(string); return s, ok }
	num := func(i int) (int64, bool) { n, ok := res[i].(int64); return n, ok }
	var v fleetView
	var ok [8]bool
	v.state, ok[0] = str(0)
	v.epoch, ok[1] = num(1)
	v.until, ok[2] = num(2)
	v.now, ok[3] = num(3)
	v.holder, ok[4] = str(4)
	v.live, ok[5] = num(5)
	v.tripped, ok[6] = num(6)
	v.cause, ok[7] = str(7)
	for i, good := range ok {
		if !good {
			return nil, &DataError{Policy: b.name, Detail: fmt.Sprintf("the sync script's answer %d is %T", i, res[i])}
		}
	}
	return &v, nil
}

// loop is the fleet breaker's background goroutine: a sync each interval,
// and at once when woken (the local breaker changed, pub/sub announced a
// change, an operator acted).
func (b *Breaker) loop(ctx context.Context) {
	t := time.NewTicker(b.f.interval)
	defer t.Stop()
	defer b.f.bus().unregister(b)
	for {
		b.sync(ctx)
		select {
		case <-ctx.Done():
			b.view.Store(nil) // on its own from now on: the gate holds nothing
			return
		case <-t.C:
		case <-b.wake:
		}
	}
}

// sync sends this instance's heartbeat and report, reads the fleet's state,
// and applies it to the local breaker. On any failure the local breaker is
// on its own until the next sync succeeds.
func (b *Breaker) sync(ctx context.Context) {
	defer b.syncs.Add(1)
	result := b.probeResult.Load()
	probe := ""
	switch breaker.State(result) {
	case breaker.Closed:
		probe = stateClosed
	case breaker.Open:
		probe = stateOpen
	}
	tripped := 0
	// A closed local breaker has not tripped, whatever its listener, which
	// runs asynchronously, has yet to say: after following the fleet's
	// close, this instance must not report the trip it had before.
	if b.tripped.Load() && b.local.State() != breaker.Closed {
		tripped = 1
	}
	var v *fleetView
	err := b.f.op(ctx, b.name, "sync", func(ctx context.Context) error {
		res, err := syncScript.Run(ctx, b.f.client, b.keys.all, b.syncArgs(b.f.id, tripped, b.applied, probe)...).Slice()
		if err != nil {
			return b.scriptError(err)
		}
		v, err = b.parseView(res)
		return err
	})
	attrs := metric.WithAttributes(telemetry.KeyPolicyName.String(b.name))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		b.view.Store(nil)
		if de, bad := errors.AsType[*DataError](err); bad && de.Detail != b.lastBad {
			b.lastBad = de.Detail // once, not each sync
			emit.Handle(err)
		}
		emit.Guard("leveeredis: fleet breaker gauges", func() {
			b.f.inst.leaseHeld.Record(context.Background(), 0, attrs)
		})
		return
	}
	if result >= 0 {
		b.probeResult.CompareAndSwap(result, -1)
	}
	b.lastBad = ""
	v.at = time.Now()
	b.view.Store(v)
	b.apply(ctx, v)
	held := int64(0)
	if v.holder == b.f.id {
		held = 1
	}
	emit.Guard("leveeredis: fleet breaker gauges", func() {
		bg := context.Background()
		b.f.inst.live.Record(bg, v.live, attrs)
		b.f.inst.open.Record(bg, v.tripped, attrs)
		b.f.inst.leaseHeld.Record(bg, held, attrs)
	})
}

// syncArgs are syncScript's ARGV for instance id's report.
func (b *Breaker) syncArgs(id string, tripped int, seen int64, probe string) []any {
	return []any{id, b.memberTTL.Milliseconds(), tripped, seen, b.quorum,
		strconv.FormatFloat(b.share, 'f', -1, 64), b.openTimeout.Milliseconds(), b.lease.Milliseconds(),
		probe, b.keys.channel, b.name, b.stateTTL().Milliseconds()}
}

// stateTTL is how long the state hash outlives the last instance that
// synced it: long enough to ride out a restart of the whole fleet.
func (b *Breaker) stateTTL() time.Duration { return max(10*b.memberTTL, 2*b.openTimeout) }

// apply makes the local breaker follow the fleet's view v: a change of the
// fleet's state once, when it is first seen; the probe lease each sync.
func (b *Breaker) apply(ctx context.Context, v *fleetView) {
	if v.state == stateNone {
		b.seen = true
		if b.forcedBy {
			// Redis lost the operator's ForceOpen (a restart with no
			// persistence): say it again for the instances that join.
			_ = b.operator(ctx, stateForced)
		}
		return
	}
	first := !b.seen
	b.seen = true
	if v.epoch != b.applied {
		if !first { // a change made before this instance started is no lag
			lag := time.Duration(v.now-v.epoch) * time.Millisecond
			emit.Guard("leveeredis: propagation lag histogram", func() {
				b.f.inst.lag.Record(context.Background(), lag.Seconds(), metric.WithAttributes(telemetry.KeyPolicyName.String(b.name)))
			})
		}
		switch v.state {
		case stateForced:
			b.local.ForceOpen(ctx)
			b.forcedBy = true
		case stateClosed:
			if b.forcedBy || v.cause == "operator" {
				b.local.Reset(ctx)
			} else {
				b.local.Follow(ctx, breaker.Closed)
			}
			b.forcedBy = false
		case stateOpen:
			if b.forcedBy {
				b.local.Reset(ctx)
				b.forcedBy = false
			}
		}
		b.applied = v.epoch
	}
	if v.holder != b.f.id {
		// Not (or no longer) the probe holder: no probe of ours is wanted.
		b.probing.Store(false)
		b.probeResult.Store(-1)
	}
	if v.state != stateOpen {
		return
	}
	if v.holder == b.f.id {
		if b.local.State() == breaker.Open && !b.probing.Load() {
			b.probing.Store(true)
			if !b.local.Follow(ctx, breaker.HalfOpen) {
				b.probing.Store(false)
			}
		}
		return
	}
	if b.local.State() != breaker.Open {
		b.local.Follow(ctx, breaker.Open)
	}
}

// ForceOpen opens the breaker of every instance of the fleet and holds it
// open until Reset: this instance's at once, the others' within about a
// second (pub/sub), or the sync interval at worst. With Redis unreachable
// only this instance is forced, and the error says so. ctx bounds the Redis
// operation (within the fleet's operation timeout) and parents the local
// transition's span.
func (b *Breaker) ForceOpen(ctx context.Context) error {
	b.local.ForceOpen(ctx)
	err := b.operator(ctx, stateForced)
	b.poke()
	if err != nil {
		return fmt.Errorf("leveeredis: breaker %q: ForceOpen reached this instance only: %w", b.name, err)
	}
	return nil
}

// Reset closes the breaker of every instance of the fleet, from any state,
// forced open included, and forgets the instances' reported trips: this
// instance's at once, the others' within about a second. It also rewrites
// the breaker's keys, which repairs bad data. With Redis unreachable only
// this instance is reset, and the error says so.
func (b *Breaker) Reset(ctx context.Context) error {
	b.local.Reset(ctx)
	err := b.operator(ctx, stateClosed)
	b.poke()
	if err != nil {
		return fmt.Errorf("leveeredis: breaker %q: Reset reached this instance only: %w", b.name, err)
	}
	return nil
}

func (b *Breaker) operator(ctx context.Context, state string) error {
	return b.f.op(ctx, b.name, "operator", func(ctx context.Context) error {
		return b.scriptError(operatorScript.Run(ctx, b.f.client, b.keys.all,
			state, b.keys.channel, b.name, b.stateTTL().Milliseconds()).Err())
	})
}
