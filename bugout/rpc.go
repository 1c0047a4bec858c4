package bugout

import (
	"context"
	"encoding/json"
	"fmt"
)

// Handler serves one RPC. caller is the authenticated address of the
// caller; args is its JSON ("null" when it sent none or bad JSON). The
// result must be truthy JSON (an object is best): Bugout callers ignore
// null, false, 0 and "", so those are sent as {} instead. An error is sent
// as {"error": err.Error()}. ctx ends with the Peer or after RPCTimeout.
type Handler func(ctx context.Context, caller Address, args json.RawMessage) (json.RawMessage, error)

type handlerEntry struct {
	fn          Handler
	description string
}

type pendingCall struct {
	to     Address
	result chan json.RawMessage // buffered 1
}

// noSuchCall is Bugout's answer to an unknown call (§4.10).
var noSuchCall = json.RawMessage(`{"error":"No such API call."}`)

// Register serves name with h, replacing any handler of that name,
// including the built-in "ping" (which echoes its args with pong: true, as
// Bugout's examples and README do; Bugout itself registers nothing).
func (p *Peer) Register(name, description string, h Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handlers[name] = handlerEntry{fn: h, description: description}
}

// Call invokes name on the peer at to with args (JSON encoded; nil sends
// null) and returns its result. The call and the response travel encrypted.
// Without a deadline on ctx it gives up after RPCTimeout with ErrRPCTimeout.
// The peer must be in the table (ErrUnknownPeer otherwise).
func (p *Peer) Call(ctx context.Context, to Address, name string, args any) (json.RawMessage, error) {
	a, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("bugout: encode rpc args: %w", err)
	}
	ek, err := p.peerKey(to)
	if err != nil {
		return nil, err
	}
	rn := [nonceLen]byte(p.random(nonceLen))
	pc := &pendingCall{to: to, result: make(chan json.RawMessage, 1)}
	p.mu.Lock()
	p.pending[rn] = pc
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, rn)
		p.mu.Unlock()
	}()
	b, err := p.newPacket(map[string]any{"y": typeRPC, "c": name, "a": a, "rn": rn[:]})
	if err != nil {
		return nil, err
	}
	if b, err = p.encryptTo(ek, b); err != nil {
		return nil, err
	}
	if err := p.broadcast(b, nil); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.RPCTimeout)
		defer cancel()
	}
	select {
	case res := <-pc.result:
		return res, nil
	case <-p.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("%w: %s on %s", ErrRPCTimeout, name, to)
		}
		return nil, ctx.Err()
	}
}

// checkResponse refuses a response that answers no call of ours, or comes
// from someone other than the peer called. Call with p.mu held.
func (p *Peer) checkResponse(op *opened) error {
	pc := p.pending[[nonceLen]byte(padNonce(op.pkt.RN))]
	if pc == nil || len(op.pkt.RN) != nonceLen {
		return reject(ErrUnexpectedResponse, "from %s, rn %x matches no call", op.from, op.pkt.RN)
	}
	if pc.to != op.from {
		return reject(ErrUnexpectedResponse, "from %s, but the call went to %s", op.from, pc.to)
	}
	return nil
}

func padNonce(b []byte) []byte {
	var n [nonceLen]byte
	copy(n[:], b)
	return n[:]
}

// deliverLocked hands a checked response to its Call. Call with p.mu held.
func (p *Peer) deliverLocked(op *opened) {
	rn := [nonceLen]byte(op.pkt.RN)
	pc := p.pending[rn]
	if pc == nil {
		return
	}
	if falsy(op.pkt.RR) {
		// Bugout ignores these too and keeps waiting (§4.10).
		p.log.Debug("rpc response dropped: not truthy JSON", "from", op.from)
		return
	}
	delete(p.pending, rn)
	res := json.RawMessage(op.pkt.RR)
	pc.result <- res
	p.emit(Event{Type: EventRPCResponse, Address: op.from, Nonce: hexNonce(op.pkt.RN), Result: res})
}

// serveLocked emits the rpc event and runs the handler. Call with p.mu held.
func (p *Peer) serveLocked(op *opened) {
	call, args := string(op.pkt.C), json.RawMessage(op.pkt.A)
	if !json.Valid(args) {
		args = json.RawMessage("null")
	}
	p.emit(Event{Type: EventRPC, Address: op.from, Call: call, Args: args, Nonce: hexNonce(op.pkt.RN)})
	h, ok := p.handlers[call]
	if !ok {
		p.respondAsync(op, noSuchCall)
		return
	}
	select {
	case p.rpcSem <- struct{}{}:
	default:
		p.respondAsync(op, json.RawMessage(`{"error":"busy"}`))
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.rpcSem }()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RPCTimeout)
		defer cancel()
		res, err := p.runHandler(ctx, h.fn, call, op.from, args)
		switch {
		case err != nil:
			res, _ = json.Marshal(map[string]string{"error": err.Error()})
		case !json.Valid(res):
			res = json.RawMessage(`{"error":"handler returned invalid JSON"}`)
		case falsy(res):
			res = json.RawMessage(`{}`)
		}
		p.respond(op, res)
	}()
}

// runHandler runs h, turning a panic into an error: a remote call must not
// take the process down.
func (p *Peer) runHandler(ctx context.Context, h Handler, call string, caller Address, args json.RawMessage) (res json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("rpc handler panicked", "call", call, "caller", caller, "panic", r)
			res, err = nil, fmt.Errorf("internal error")
		}
	}()
	return h(ctx, caller, args)
}

// respondAsync responds from a new goroutine: respond takes p.mu, which
// the caller holds. Wires are still up (they are waited for before the
// handlers), so the Add cannot race Close's Wait.
func (p *Peer) respondAsync(op *opened, result json.RawMessage) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.respond(op, result)
	}()
}

// respond sends {y:"rr", rn, rr} signed and encrypted to the caller's ek
// from its signed call.
func (p *Peer) respond(op *opened, result json.RawMessage) {
	b, err := p.newPacket(map[string]any{"y": typeResponse, "rn": []byte(op.pkt.RN), "rr": []byte(result)})
	if err == nil {
		b, err = p.encryptTo(op.ek, b)
	}
	if err == nil {
		err = p.broadcast(b, nil)
	}
	if err != nil {
		p.log.Debug("rpc response not sent", "to", op.from, "err", err)
	}
}

// pingHandler is the built-in "ping": the args object with pong: true.
func pingHandler(_ context.Context, _ Address, args json.RawMessage) (json.RawMessage, error) {
	obj := map[string]any{}
	if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
		obj = map[string]any{}
	}
	obj["pong"] = true
	return json.Marshal(obj)
}
