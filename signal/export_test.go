package signal

import "time"

// ExpireAt runs the sweeper as if the clock read now.
func (s *Server) ExpireAt(now time.Time) { s.expire(now) }
