// Package pluginpb is the generated Go code of processor.proto, the gRPC
// protocol between weir and its out-of-process processors.
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative processor.proto
