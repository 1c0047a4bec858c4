package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/chromium"
)

// The lab's browsers are [chromium.Browser]s run inside a home's namespace.
// Of the features [chromium.DisabledFeatures] turns off,
// WebRtcHideLocalIpsWithMdns matters most here: with it, host candidates
// are .local names that the far page resolves by multicast DNS on its own
// link, and even with no host candidate offered (profilePrefs) its mDNS
// responder still joins the multicast group: an IGMP report to 224.0.0.22
// that the egress check counts.

// profilePrefs is the lab profile's Default/Preferences. The WebRTC IP
// handling policy default_public_interface_only (the setting behind Chrome's
// WebRtcIPHandling policy) makes a page offer no host candidate, only
// server-reflexive and relayed ones. Across two NATs a host candidate can
// never connect, but offering it makes the far page send ICE checks to this
// home's private address (out through its own router), or, with mDNS
// hiding, multicast DNS queries on its link: packets to addresses other than
// the Box and the other router, which the egress check forbids.
const profilePrefs = `{"webrtc": {"ip_handling_policy": "default_public_interface_only"}}`

// blackholedNames are host resolver rules for the names Chromium still looks
// up with every switch of [chromium.Args], at start-up, whatever the page does: the
// update client (update.googleapis.com/service/update2/json, although the
// component updater is off) and the account reconcilor
// (accounts.google.com/ListAccounts). ~NOTFOUND fails the lookup inside the
// browser, so no packet leaves. Only these exact names: the page itself uses
// IP literals, and any other lookup must still show up at the lab's
// resolver.
//
// The third is the spell checker's dictionary download
// (redirector.gvt1.com/edgedl/chrome/dict/en-us-10-2.bdic), which typing
// into a page's text input can start (the go-messageboard scenario types
// into Bugout's messageboard page): in a net log it came 0.4 s after the
// page's input got focus and keys, in 3 runs of 15. Turning spell
// checking off in the profile (browser.enable_spellchecking false, with
// spellcheck.dictionaries empty) did not stop it (1 run of 8).
var blackholedNames = []string{
	"MAP accounts.google.com ~NOTFOUND",
	"MAP update.googleapis.com ~NOTFOUND",
	"MAP redirector.gvt1.com ~NOTFOUND",
}

// browser is a headless Chromium running in home name's namespace, with
// one page.
type browser struct {
	*chromium.Browser
	name string
}

// startBrowser starts Chromium (the binary bin) inside n, with the lab's
// profile and black-holed names, and opens one blank page. t.Cleanup stops
// it.
func startBrowser(ctx context.Context, t *testing.T, n ns, name, bin string) (*browser, error) {
	b, err := chromium.Start(ctx, t, chromium.Options{
		Binary:            bin,
		Wrap:              []string{"ip", "netns", "exec", n.name},
		HostResolverRules: strings.Join(blackholedNames, ", "),
		Preferences:       profilePrefs,
	})
	if err != nil {
		return nil, fmt.Errorf("browser %s: %w", name, err)
	}
	return &browser{Browser: b, name: name}, nil
}

// open navigates the page to url and waits until the page's script has
// defined window.lab.
func (b *browser) open(ctx context.Context, url string) error {
	if err := b.Navigate(ctx, url); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := b.WaitFor(ctx, "the lab page", `typeof lab === "object" && typeof Bugout === "function"`)
	if err != nil {
		var where string
		wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer wcancel()
		_ = b.eval(wctx, `JSON.stringify({href: location.href, readyState: document.readyState, lab: typeof lab, Bugout: typeof Bugout})`, &where)
		return fmt.Errorf("page %s not ready: %w (page: %s)", url, err, where)
	}
	return nil
}

// eval is [chromium.Browser.Eval] with only the first line of an
// exception's description (not its stack) in the error, for report lines.
func (b *browser) eval(ctx context.Context, expr string, out any) error {
	err := b.Eval(ctx, expr, out)
	if err != nil {
		if line, _, cut := strings.Cut(err.Error(), "\n"); cut {
			return errors.New(line)
		}
	}
	return err
}
