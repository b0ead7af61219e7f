package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/client"
)

func newTopicCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics on a Kafka-compatible broker",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newTopicCreateCmd(&cf), newTopicListCmd(&cf), newTopicDescribeCmd(&cf),
		newTopicDeleteCmd(&cf), newTopicAlterConfigCmd(&cf))
	return cmd
}

func newTopicCreateCmd(cf *clientFlags) *cobra.Command {
	var (
		partitions int32
		rf         int16
		configs    []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kvs, err := client.ParseKVs(configs)
			if err != nil {
				return fmt.Errorf("-c: %w", err)
			}
			return client.CreateTopic(cmd.Context(), cf.options(), args[0], client.CreateTopicOptions{
				Partitions: partitions, ReplicationFactor: rf, Configs: kvs,
			})
		},
	}
	cmd.Flags().Int32VarP(&partitions, "partitions", "p", 1, "number of partitions (-1: the broker's default)")
	cmd.Flags().Int16VarP(&rf, "replication-factor", "r", 1, "replicas of each partition (-1: the broker's default)")
	cmd.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	return cmd
}

func newTopicListCmd(cf *clientFlags) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := client.ListTopics(cmd.Context(), cf.options(), internal)
			if err != nil {
				return err
			}
			return client.PrintTopics(cmd.OutOrStdout(), ts)
		},
	}
	cmd.Flags().BoolVarP(&internal, "internal", "i", false, "include internal topics such as __consumer_offsets")
	return cmd
}

func newTopicDescribeCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions (leader, log start, high watermark) and configs (override or default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := client.DescribeTopic(cmd.Context(), cf.options(), args[0])
			if err != nil {
				return err
			}
			return d.Print(cmd.OutOrStdout())
		},
	}
}

func newTopicDeleteCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return client.DeleteTopics(cmd.Context(), cf.options(), args...)
		},
	}
}

func newTopicAlterConfigCmd(cf *clientFlags) *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Set or remove topic config overrides (IncrementalAlterConfigs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kvs, err := client.ParseKVs(set)
			if err != nil {
				return fmt.Errorf("--set: %w", err)
			}
			return client.AlterTopicConfig(cmd.Context(), cf.options(), args[0], kvs, del)
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "set config key=value (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "remove the override of config key, back to the default (repeatable)")
	return cmd
}
