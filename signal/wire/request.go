package wire

// Action is what a request asks for.
type Action uint8

const (
	ActionAnnounce Action = iota + 1 // "announce": join a swarm, relay offers or an answer
	ActionScrape                     // "scrape": swarm counts
)

func (a Action) String() string {
	switch a {
	case ActionAnnounce:
		return "announce"
	case ActionScrape:
		return "scrape"
	}
	return "unknown"
}

// Event is the announce event. The zero value is "update", which is also
// what an absent, null or "empty" event means.
type Event uint8

const (
	EventUpdate Event = iota
	EventStarted
	EventStopped
	EventCompleted
	EventPaused
)

func (e Event) String() string {
	return [...]string{"update", "started", "stopped", "completed", "paused"}[e]
}

// Offer is one WebRTC offer of an announce.
type Offer struct {
	ID  Hash   // offer_id, chosen by the offerer
	SDP []byte // the "offer" value as raw JSON, relayed unchanged
}

// Request is a decoded client message. Its byte slices alias the input given
// to Decode: they are valid only while that input is.
type Request struct {
	Action Action

	// InfoHash is the swarm of an announce, and of a scrape naming one.
	InfoHash    Hash
	HasInfoHash bool
	// InfoHashes lists the swarms of a scrape; empty with AllSwarms set when
	// the scrape named none.
	InfoHashes []Hash
	AllSwarms  bool

	PeerID Hash
	Event  Event
	// Numwant is the client's numwant, or -1 when it sent none.
	Numwant int
	// Left is the client's left; Seeder reports left == 0. A missing or
	// non-numeric left is a leecher, as in bittorrent-tracker (NaN → Infinity).
	Seeder bool

	// Offers are the announce's offers, at most Limits.MaxOffers of them;
	// DroppedOffers counts the ones beyond.
	Offers        []Offer
	DroppedOffers int

	// Answer is set on an answer: the "answer" value as raw JSON, with the
	// offerer in ToPeerID and the offer it answers in OfferID.
	Answer   []byte
	ToPeerID Hash
	OfferID  Hash
}

// IsAnswer reports whether the request carries an answer.
func (r *Request) IsAnswer() bool { return r.Answer != nil }

// Reset clears r for reuse, keeping its slices' capacity.
func (r *Request) Reset() {
	offers, hashes := r.Offers[:0], r.InfoHashes[:0]
	*r = Request{Offers: offers, InfoHashes: hashes, Numwant: -1}
}

// Limits bound what Decode accepts. A zero field means the default shown.
type Limits struct {
	MaxOffers     int // offers kept per announce; default 10 (aquatic's max_offers)
	MaxSDPBytes   int // size of one offer or answer value; default 16 KiB
	MaxInfoHashes int // info_hashes per scrape; default 255 (aquatic)
}

func (l Limits) withDefaults() Limits {
	if l.MaxOffers <= 0 {
		l.MaxOffers = 10
	}
	if l.MaxSDPBytes <= 0 {
		l.MaxSDPBytes = 16 << 10
	}
	if l.MaxInfoHashes <= 0 {
		l.MaxInfoHashes = 255
	}
	return l
}
