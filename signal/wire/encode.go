package wire

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// AppendAnnounceResponse appends the reply to an announce:
// {"action":"announce","interval":I,"info_hash":H,"complete":S,"incomplete":L}.
func AppendAnnounceResponse(dst []byte, infoHash *Hash, interval, complete, incomplete int) []byte {
	dst = append(dst, `{"action":"announce","interval":`...)
	dst = strconv.AppendInt(dst, int64(interval), 10)
	dst = append(dst, `,"info_hash":`...)
	dst = appendBinary(dst, infoHash)
	dst = append(dst, `,"complete":`...)
	dst = strconv.AppendInt(dst, int64(complete), 10)
	dst = append(dst, `,"incomplete":`...)
	dst = strconv.AppendInt(dst, int64(incomplete), 10)
	return append(dst, '}')
}

// AppendOffer appends an offer relayed to a peer: peer_id is the offerer.
func AppendOffer(dst []byte, infoHash, from, offerID *Hash, sdp []byte) []byte {
	return appendRelay(dst, `,"offer":`, infoHash, from, offerID, sdp)
}

// AppendAnswer appends an answer relayed to the offerer: peer_id is the
// answerer.
func AppendAnswer(dst []byte, infoHash, from, offerID *Hash, sdp []byte) []byte {
	return appendRelay(dst, `,"answer":`, infoHash, from, offerID, sdp)
}

func appendRelay(dst []byte, key string, infoHash, from, offerID *Hash, sdp []byte) []byte {
	dst = append(dst, `{"action":"announce","info_hash":`...)
	dst = appendBinary(dst, infoHash)
	dst = append(dst, `,"peer_id":`...)
	dst = appendBinary(dst, from)
	dst = append(dst, key...)
	dst = append(dst, sdp...)
	dst = append(dst, `,"offer_id":`...)
	dst = appendBinary(dst, offerID)
	return append(dst, '}')
}

// ScrapeFile is one swarm's counts in a scrape reply.
type ScrapeFile struct {
	InfoHash   Hash
	Complete   int // seeders
	Incomplete int // leechers
	Downloaded int // completed events seen
}

// AppendScrapeResponse appends the reply to a scrape, in bittorrent-tracker's
// shape: {"action":"scrape","files":{H:{...}},"flags":{"min_request_interval":N}}.
func AppendScrapeResponse(dst []byte, files []ScrapeFile, minInterval int) []byte {
	dst = append(dst, `{"action":"scrape","files":{`...)
	for i := range files {
		f := &files[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendBinary(dst, &f.InfoHash)
		dst = append(dst, `:{"complete":`...)
		dst = strconv.AppendInt(dst, int64(f.Complete), 10)
		dst = append(dst, `,"incomplete":`...)
		dst = strconv.AppendInt(dst, int64(f.Incomplete), 10)
		dst = append(dst, `,"downloaded":`...)
		dst = strconv.AppendInt(dst, int64(f.Downloaded), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `},"flags":{"min_request_interval":`...)
	dst = strconv.AppendInt(dst, int64(minInterval), 10)
	return append(dst, `}}`...)
}

// AppendFailure appends a failure reply. Unlike bittorrent-tracker it always
// carries "action" (the webtorrent client treats a reply without one as a
// socket error and goes offline for minutes), and "info_hash" when known.
func AppendFailure(dst []byte, action Action, infoHash *Hash, reason string) []byte {
	if action != ActionScrape {
		action = ActionAnnounce
	}
	dst = append(dst, `{"action":"`...)
	dst = append(dst, action.String()...)
	dst = append(dst, '"')
	if infoHash != nil {
		dst = append(dst, `,"info_hash":`...)
		dst = appendBinary(dst, infoHash)
	}
	dst = append(dst, `,"failure reason":`...)
	dst, _ = jsontext.AppendQuote(dst, reason) // invalid UTF-8 becomes U+FFFD
	return append(dst, '}')
}
