import {topicStats} from '../../cli/defs/topic.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(topicStats)
