// Package kafka is weir's Kafka wire-protocol server: a TCP listener,
// request framing and headers, per-connection limits, and dispatch of
// kmsg-decoded requests to package broker.
//
// # Framing
//
// A request is an int32 size followed by that many bytes: int16 api_key,
// int16 api_version, int32 correlation_id, a nullable int16-length
// client_id (never compact), then, for flexible versions, the header's
// tagged fields, then the body. A response is an int32 size, the int32
// correlation_id, one empty tagged-field byte when the response is flexible
// (never for ApiVersions, whose response header is always v0), then the
// body.
//
// # Limits and bad input
//
// A size above Config.MaxRequestBytes or below the smallest header is
// refused before anything is allocated for it, and the connection closed.
// A Fetch response holds at most Config.MaxFetchBytes of records whatever
// the client asks for, and one Produce request writes its partitions with
// a fixed number of goroutines however many it names.
// Array and tag counts are bounded by the bytes present (kmsg checks every
// count against what is left). A request that does not decode, names an
// unknown API key or a version outside the advertised range (except
// ApiVersions, answered with UNSUPPORTED_VERSION and our ranges per
// KIP-511) closes that connection with a log line; nothing reaches the
// broker, and other connections are unaffected.
//
// # Ordering
//
// Requests on one connection are handled one at a time and answered in
// order, as Kafka does; a long-polling Fetch parks only its own connection.
package kafka
