package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// versionRange is the [min, max] version weir serves for an API key.
type versionRange struct{ min, max int16 }

// supported lists the API keys weir implements, with the version ranges it
// advertises. Minimums are low where librdkafka enables features only when
// an old version is in range (Produce from 0 for compression; Produce v0-2
// are refused on arrival). Maxima stay below the topic-ID versions.
var supported = map[int16]versionRange{
	kmsg.Produce.Int16():                 {0, 11},
	kmsg.Fetch.Int16():                   {4, 12},
	kmsg.ListOffsets.Int16():             {0, 6}, // v7 adds -3 (max timestamp), not implemented
	kmsg.Metadata.Int16():                {0, 12},
	kmsg.ApiVersions.Int16():             {0, 3},
	kmsg.CreateTopics.Int16():            {0, 7},
	kmsg.DeleteTopics.Int16():            {0, 6},
	kmsg.InitProducerID.Int16():          {0, 4},
	kmsg.DescribeConfigs.Int16():         {0, 4},
	kmsg.AlterConfigs.Int16():            {0, 2},
	kmsg.CreatePartitions.Int16():        {0, 3},
	kmsg.IncrementalAlterConfigs.Int16(): {0, 1},
	kmsg.DescribeCluster.Int16():         {0, 1},
	kmsg.FindCoordinator.Int16():         {0, 6},
	kmsg.JoinGroup.Int16():               {0, 9},
	kmsg.SyncGroup.Int16():               {0, 5},
	kmsg.Heartbeat.Int16():               {0, 4},
	kmsg.LeaveGroup.Int16():              {0, 5},
	kmsg.OffsetCommit.Int16():            {0, 8},
	kmsg.OffsetFetch.Int16():             {0, 8},
	kmsg.ListGroups.Int16():              {0, 4},
	kmsg.DescribeGroups.Int16():          {0, 5},
	kmsg.DeleteGroups.Int16():            {0, 2},
	kmsg.OffsetDelete.Int16():            {0, 0},
	kmsg.OffsetForLeaderEpoch.Int16():    {0, 4},
}

// minProduceVersion is the oldest Produce weir accepts: v3 is the first that
// carries RecordBatch v2.
const minProduceVersion = 3

func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(supported))
	for k := int16(0); k < 100; k++ {
		if r, ok := supported[k]; ok {
			keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r.min, MaxVersion: r.max})
		}
	}
	return keys
}
